"""How DPR reads a prompt it has never seen: the shipped grounding rule beside the alternatives we tried.

DPR replaces a prompt's text embedding by the prototype of the attribute its reader names (core/models/dpr.py),
and on the negative task that reading decides the result: an avoid prompt grounded to the wrong genre leaves the banned
genre at the backbone's rate. Each rule names the genre a phrasing is about; we count how often it is right.

A rule is judged on training phrasings only: three folds, each holding out a third of every genre's training
wordings and a third of the templates, so the held-out phrasings are new in both wording and frame. The
evaluation phrasings (the prompt benchmarks' own) are reported beside that and chose nothing.
Rules: a logistic regression on the phrasing embeddings of both polarities (DPR's reader: an avoid phrasing is
also read by what want phrasings of the same genre taught it), the same fitted on one polarity's phrasings (the
reader before), the nearest prototype (unit mean embedding of a genre's phrasings, per polarity; DPR's rule
before any reader), centred prototypes (the mean over genres taken off both sides), the nearest single phrasing,
and prototypes of bare wordings matched after deleting the negation cue. Only the reader of both polarities
sees the other polarity's (held-out-split) phrasings.
Writes benchmarks/results/grounding.{json,md}.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import machine, machine_line, markdown_table, memoised_encoder, write_results

FOLDS = 3


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def predictions(train: list[np.ndarray], other: list[np.ndarray], bare: list[np.ndarray], queries: np.ndarray,
                stripped: np.ndarray) -> dict[str, np.ndarray]:
    """Each rule's genre for every query. train[a]: embeddings of genre a's training phrasings of the query's
    polarity; other[a]: of the other polarity's; bare[a]: of its bare wordings; stripped: the queries with their
    negation cue deleted."""
    from core.train_dpr import fit_reader

    prototypes = unit(np.stack([block.mean(0) for block in train]))
    centre = prototypes.mean(0)
    weights, biases = fit_reader([np.concatenate(pair) for pair in zip(train, other)])
    own_weights, own_biases = fit_reader(train)
    return {
        "logistic regression, both polarities (shipped reader)": (queries @ weights.T + biases).argmax(1),
        "logistic regression, one polarity": (queries @ own_weights.T + own_biases).argmax(1),
        "nearest prototype": (queries @ prototypes.T).argmax(1),
        "centred prototypes": (unit(queries - centre) @ unit(prototypes - centre).T).argmax(1),
        "nearest phrasing": np.stack([(queries @ block.T).max(1) for block in train], 1).argmax(1),
        "cue deleted, bare wordings": (stripped @ unit(np.stack([b.mean(0) for b in bare])).T).argmax(1),
    }


def accuracy(encode, vocab, templates, other_templates, negative: bool, held_out) -> dict[str, float]:
    """Share of held-out phrasings each rule grounds to their own genre. held_out(genre, kind, items) splits
    genre's training wordings (kind "wordings") or a polarity's training templates ("templates") into (fit,
    query); other_templates are the other polarity's, of which only the fitting part is used."""
    from core.prompts import NEGATION, wordings

    fit, other, query, bare = [], [], [], []
    for a, name in enumerate(vocab):
        fit_words, query_words = held_out(a, "wordings", wordings(name, "train"))
        fit_templates, query_templates = held_out(a, "templates", templates)
        fit.append(encode([t.format(x=w) for t in fit_templates for w in fit_words]))
        other_fit_templates, _ = held_out(a, "templates", other_templates)
        other.append(encode([t.format(x=w) for t in other_fit_templates for w in fit_words]))
        bare.append(encode(fit_words))
        query += [(a, t.format(x=w)) for t in query_templates for w in query_words]
    texts = [text for _, text in query]
    stripped = [NEGATION.sub(" ", text) for text in texts] if negative else texts
    truth = np.array([a for a, _ in query])
    found = predictions(fit, other, bare, encode(texts), encode(stripped))
    return {rule: float((genres == truth).mean()) for rule, genres in found.items()}


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    from core.data import load_dataset
    from core.prompts import NEGATIVE_TEMPLATES, POSITIVE_TEMPLATES, attribute_vocabulary, wordings
    from core.text import shared_encoder

    encoder = shared_encoder()
    encode = memoised_encoder(encoder)

    vocab = attribute_vocabulary(load_dataset())
    rows = []
    for negative in (False, True):
        train_templates, eval_templates = NEGATIVE_TEMPLATES if negative else POSITIVE_TEMPLATES
        other_templates = (POSITIVE_TEMPLATES if negative else NEGATIVE_TEMPLATES)[0]
        folds = [accuracy(encode, vocab, train_templates, other_templates, negative,
                          lambda a, kind, items, k=k: ([x for i, x in enumerate(items) if i % FOLDS != k],
                                                       [x for i, x in enumerate(items) if i % FOLDS == k]))
                 for k in range(FOLDS)]
        evaluation = accuracy(encode, vocab, train_templates, other_templates, negative,
                              lambda a, kind, items: (items, wordings(vocab[a], "eval") if kind == "wordings"
                                                      else eval_templates))
        polarity = "avoid" if negative else "want"
        rows += [{"polarity": polarity, "rule": rule,
                  "held-out training phrasings": float(np.mean([fold[rule] for fold in folds])),
                  "evaluation phrasings": evaluation[rule]} for rule in evaluation]
    columns = ["polarity", "rule", "held-out training phrasings", "evaluation phrasings"]
    info = machine()
    markdown = ("## Grounding unseen prompts (ML-100K genres, all-MiniLM-L6-v2)\n\n"
                "Share of phrasings grounded to their own genre. Held-out training phrasings: mean over "
                f"{FOLDS} folds, each fitting on two thirds of every genre's training wordings and of the "
                "templates and asking about the other third of both; evaluation phrasings: fitted on all training "
                "phrasings, asked about the evaluation ones (never used to choose a rule).\n\n"
                f"{markdown_table(rows, columns)}\n\n{machine_line(info)}\n")
    write_results("grounding", {"machine": info, "folds": FOLDS, "rows": rows}, markdown)


if __name__ == "__main__":
    main()
