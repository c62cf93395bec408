"""A want and an avoid at once: DPR against the oracle filter, on every test user.

The prompt tasks (benchmarks/prompt_tasks.py) give DPR one prompt at a time; a person often types both. Each
user's target fixes the pair: the want is the positive task's genre (one the target carries, the least present
in the history), the avoid one the target lacks, chosen two ways:
- usual: the negative task's rule (the lacking genre most present in the history);
- overlapping: the lacking genre that most often comes with the wanted one in the catalogue (Musical next to
  Animation), the case where the avoid has to cut into what the want asks for.
Metrics: NDCG@10 and Recall@10 of the target, compliance@10 (share of the top 10 with the wanted genre) and
violation@10 (share with the avoided one). Methods: the backbone (prompts ignored), the oracle filter (only items
with the wanted genre and without the avoided one), DPR, and DPR with a strict avoid (items of the genre it read
in the avoid removed, as `--strict-avoid` does). Test users are phrased with the evaluation phrasings; `--split
valid` asks validation users with training phrasings, the setting DPR's model selection uses.
Writes benchmarks/results/composed_prompts.{json,md} (`--split valid`: composed_prompts_valid).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import machine, machine_line, markdown_table, write_results

PAIRINGS = ("usual", "overlapping")


def composed_cases(dataset, part: str, matrix: np.ndarray, pairing: str) -> list[tuple]:
    """(user, history, target, want attribute, avoid attribute) for every user whose target allows both."""
    from core.prompt_tasks import co_occurrence, overlapping_attributes, rule_attribute

    company = co_occurrence(matrix)
    cases = []
    for user in range(1, dataset.num_users + 1):
        history, target = dataset.split(user, part)
        want = rule_attribute(history, target, matrix, negative=False)
        if want is None or matrix[:, target].all():
            continue
        avoid = (rule_attribute(history, target, matrix, negative=True) if pairing == "usual"
                 else int(overlapping_attributes(np.array([want]), np.array([target]), matrix, company)[0]))
        cases.append((user, history, target, want, avoid))
    return cases


def scorers(engine, backbone: str, carries: torch.Tensor):
    """Each method as `(sequences, texts (B, 2, 384), wants, avoids) -> scores (B, items + 1)`."""
    net = engine.backbones[backbone]
    dpr = engine.dpr[backbone][0]
    item_vectors, semantics = net.item_vectors(), dpr.item_semantics(engine.item_text)
    negative = torch.tensor([[False, True]])

    def steered(sequences, texts):
        polarity = negative.expand(len(texts), -1)
        user, query, _, readings = dpr(net.user_vector(sequences), texts, polarity, torch.ones_like(polarity))
        return dpr.scores(user, query, item_vectors, semantics), readings

    def backbone_scores(sequences, texts, wants, avoids):
        return net.full_sort_predict(sequences)

    def oracle_filter(sequences, texts, wants, avoids):
        removed = ~carries[wants] | carries[avoids]
        return net.full_sort_predict(sequences).masked_fill(removed, float("-inf"))

    def dpr_scores(sequences, texts, wants, avoids):
        return steered(sequences, texts)[0]

    def dpr_strict(sequences, texts, wants, avoids):
        scores, readings = steered(sequences, texts)
        return scores.masked_fill(dpr.banned_items(readings, negative.expand(len(texts), -1), carries),
                                  float("-inf"))

    return {"backbone": backbone_scores, "filter (oracle genres)": oracle_filter, "dpr": dpr_scores,
            "dpr, strict avoid": dpr_strict}


@torch.no_grad()
def evaluate(cases, methods, texts: torch.Tensor, carries: torch.Tensor, max_len: int, batch_size: int = 256):
    from core.evaluate import exclude_history, metrics_from_ranks, pad_left, target_ranks
    from core.prompt_tasks import top_share

    ranks, wanted, avoided = ({name: [] for name in methods} for _ in range(3))
    for start in range(0, len(cases), batch_size):
        batch = cases[start:start + batch_size]
        histories, targets = [c[1] for c in batch], [c[2] for c in batch]
        wants, avoids = torch.tensor([c[3] for c in batch]), torch.tensor([c[4] for c in batch])
        sequences = pad_left(histories, max_len)
        for name, scorer in methods.items():
            scores = exclude_history(scorer(sequences, texts[start:start + batch_size], wants, avoids).float(),
                                     histories, targets)
            ranks[name].append(target_ranks(scores, targets))
            wanted[name].append(top_share(scores, carries[wants]))
            avoided[name].append(top_share(scores, carries[avoids]))
    return {name: {**metrics_from_ranks(torch.cat(ranks[name])),
                   "compliance@10": float(torch.cat(wanted[name]).mean()),
                   "violation@10": float(torch.cat(avoided[name]).mean())} for name in methods}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["test", "valid"], default="test")
    parser.add_argument("--checkpoints", help="a checkpoint folder other than the shipped one (tables not written)")
    args = parser.parse_args(argv)
    from core.engine import Engine
    from core.prompts import attribute_matrix, attribute_vocabulary, pick_phrasing

    engine = Engine(checkpoints=args.checkpoints, models=["sasrec", "gru4rec", "dpr"])
    dataset = engine.dataset
    vocab = attribute_vocabulary(dataset)
    matrix = attribute_matrix(dataset, vocab)
    carries = torch.from_numpy(matrix)
    phrasing = "eval" if args.split == "test" else "train"
    rows, pairs = [], {}
    for pairing in PAIRINGS:
        cases = composed_cases(dataset, args.split, matrix, pairing)
        phrases = [(pick_phrasing(vocab[want], False, phrasing, dataset.user_ids[user]),
                    pick_phrasing(vocab[avoid], True, phrasing, dataset.user_ids[user]))
                   for user, _, _, want, avoid in cases]
        unique = sorted({p for pair in phrases for p in pair})
        table = dict(zip(unique, engine.encoder.encode(unique)))
        texts = torch.from_numpy(np.stack([[table[want], table[avoid]] for want, avoid in phrases]))
        common = {}
        for _, _, _, want, avoid in cases:
            common[vocab[want], vocab[avoid]] = common.get((vocab[want], vocab[avoid]), 0) + 1
        pairs[pairing] = {"users": len(cases), "most common": [f"{w} / {a}: {n}" for (w, a), n in
                                                               sorted(common.items(), key=lambda x: -x[1])[:3]]}
        for backbone in (b for b in ("sasrec", "gru4rec") if engine.is_available("dpr", b)):
            results = evaluate(cases, scorers(engine, backbone, carries), texts, carries,
                               engine.backbones[backbone].config.max_len)
            rows += [{"pairing": pairing, "backbone": backbone, "method": name, **metrics}
                     for name, metrics in results.items()]
    columns = ["pairing", "backbone", "method", "ndcg@10", "recall@10", "compliance@10", "violation@10"]
    info = machine()
    who = ("test users, evaluation phrasings" if args.split == "test"
           else "validation users, training phrasings")
    markdown = (f"## A want and an avoid at once (ML-100K, {who})\n\n"
                "Want: a genre the target carries (the positive task's rule); avoid: a genre it lacks, the "
                "negative task's (usual) or the one that most often comes with the wanted genre (overlapping). "
                + " ".join(f"{p}: {pairs[p]['users']} users, most common pairs {', '.join(pairs[p]['most common'])}."
                           for p in PAIRINGS)
                + f"\n\n{markdown_table(rows, columns)}\n\n{machine_line(info)}\n")
    name = "composed_prompts" if args.split == "test" else "composed_prompts_valid"
    if args.checkpoints:  # a trial checkpoint: its table is printed, the committed ones stay
        print(markdown)
    else:
        write_results(name, {"machine": info, "split": args.split, "pairs": pairs, "rows": rows}, markdown)


if __name__ == "__main__":
    main()
