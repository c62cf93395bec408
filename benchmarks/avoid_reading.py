"""Avoid prompts DPR is unsure of: would also avoiding its second reading lower the violation?

Most of DPR's violation on the negative task comes from avoid phrasings its reader misreads, and a misread
comes with a low top probability. The rule tried here: when the reader's top probability is under `tau`, the
prompt also steers away from the second-likeliest genre (a second avoid prompt, that genre's prototype), and
with `strict` both genres are removed outright. It is judged without test users or evaluation phrasings:
validation users, and avoid phrasings held out from the reader (three folds, each refitting the reader on
two thirds of every genre's training wordings and of the templates of both polarities, and phrasing every case with the other
third). tau = 0 is the shipped rule. Writes benchmarks/results/avoid_reading.{json,md}.
"""
from __future__ import annotations

import argparse
import copy
import hashlib

import numpy as np
import torch

from benchmarks.common import machine, machine_line, markdown_table, memoised_encoder, write_results

FOLDS = 3
TAUS = (0.0, 0.2, 0.3, 0.4)


def held_out(items: list, fold: int) -> tuple[list, list]:
    """(what the reader is fitted on, what it is asked about) in one fold."""
    return ([x for i, x in enumerate(items) if i % FOLDS != fold],
            [x for i, x in enumerate(items) if i % FOLDS == fold])


def unsure_scorer(dpr, backbone, item_vectors, semantics, carries, tau: float, strict: bool):
    """DPR with one avoid prompt per row, plus its second reading where the top reading is under tau."""
    def score(batch):
        rows = len(batch)
        _, weights = dpr.ground(batch.texts[:, None], torch.ones(rows, 1, dtype=torch.bool))
        top = weights[:, 0].topk(2, -1)
        unsure = top.values[:, 0] < tau
        texts = torch.stack([batch.texts, dpr.prototypes[1, top.indices[:, 1]]], 1)
        present = torch.stack([torch.ones(rows, dtype=torch.bool), unsure], 1)
        steered, query, _, _ = dpr.steer(backbone.user_vector(batch.sequences), texts,
                                         torch.ones(rows, 2, dtype=torch.bool), present)
        scores = dpr.scores(steered, query, item_vectors, semantics)
        if strict:
            banned = carries[top.indices[:, 0]] | (carries[top.indices[:, 1]] & unsure[:, None])
            scores = scores.masked_fill(banned, float("-inf"))
        return scores
    return score


def main(argv=None):
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    from core.engine import Engine
    from core.prompt_tasks import build_prompt_cases, evaluate_prompt_task, filter_scorer
    from core.prompts import NEGATIVE_TEMPLATES, POSITIVE_TEMPLATES, attribute_matrix, attribute_vocabulary, wordings
    from core.train_dpr import fit_reader

    engine = Engine(models=["sasrec", "gru4rec", "dpr"])
    dataset, encoder = engine.dataset, engine.encoder
    vocab = attribute_vocabulary(dataset)
    carries = torch.from_numpy(attribute_matrix(dataset, vocab))
    encode = memoised_encoder(encoder)

    cases = build_prompt_cases(dataset, "negative", "valid", carries.numpy(), vocab, encoder, "train")
    scores = {}
    for backbone in ("sasrec", "gru4rec"):
        net, shipped = engine.backbones[backbone], engine.dpr[backbone][0]
        item_vectors, semantics = net.item_vectors(), shipped.item_semantics(engine.item_text)
        for fold in range(FOLDS):
            blocks, queries = [], []
            for name in vocab:
                fit_words, query_words = held_out(wordings(name, "train"), fold)
                fit_templates, query_templates = held_out(list(NEGATIVE_TEMPLATES[0]), fold)
                fit_templates += held_out(list(POSITIVE_TEMPLATES[0]), fold)[0]  # the reader reads both polarities
                blocks.append(encode([t.format(x=w) for t in fit_templates for w in fit_words]))
                queries.append([t.format(x=w) for t in query_templates for w in query_words])
            dpr = copy.deepcopy(shipped)
            weights, biases = fit_reader(blocks)
            dpr.reader_weight.copy_(torch.from_numpy(weights))
            dpr.reader_bias.copy_(torch.from_numpy(biases))
            phrases = [queries[a][int(hashlib.sha256(f"{user}|{fold}".encode()).hexdigest()[:8], 16)
                                  % len(queries[a])] for user, a in zip(cases.users, cases.attributes.tolist())]
            fold_cases = copy.copy(cases)
            fold_cases.texts, fold_cases.phrases = torch.from_numpy(encode(phrases)), phrases
            methods = {"filter (oracle genre)": filter_scorer(net, carries)}
            for tau in TAUS:
                for strict in (False, True):
                    shipped_rule = tau == 0 and not strict
                    label = f"tau {tau}" + (", strict" if strict else "") + (" (shipped)" if shipped_rule else "")
                    methods[label] = unsure_scorer(dpr, net, item_vectors, semantics, carries, tau, strict)
            with torch.no_grad():
                results = evaluate_prompt_task(fold_cases, methods, carries, net.config.max_len)
            for label, metrics in results.items():
                scores.setdefault((backbone, label), []).append(
                    [metrics["recall@10"], metrics["ndcg@10"], metrics["violation@10"]])
    rows = [{"backbone": backbone, "rule": label, **dict(zip(("recall@10", "ndcg@10", "violation@10"),
                                                             np.mean(values, 0).tolist()))}
            for (backbone, label), values in scores.items()]
    info = machine()
    markdown = ("## Avoid prompts DPR is unsure of (ML-100K validation users, held-out avoid wordings)\n\n"
                f"Negative task on {len(cases)} validation users, each phrased with a training wording and template "
                f"held out from the reader (mean over {FOLDS} folds). tau: below this top probability the prompt "
                "also avoids the reader's second genre; strict: the genres read are removed outright.\n\n"
                + markdown_table(rows, ["backbone", "rule", "recall@10", "ndcg@10", "violation@10"])
                + f"\n\n{machine_line(info)}\n")
    write_results("avoid_reading", {"machine": info, "folds": FOLDS, "users": len(cases), "rows": rows}, markdown)


if __name__ == "__main__":
    main()
