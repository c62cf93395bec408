"""Prompt-guided tasks on ML-100K test users, evaluation phrasings only (never seen in training).

One table per task and backbone, every method in a row: the backbone (prompt ignored), the oracle hard filter
over the whole catalogue and over the backbone's top 100, the text rerank of the top 100, and DPR; then MixRec
without and with the prompt in its context. A last section separates language from steering: how often
DPR's grounding picks the right attribute, for training and for evaluation phrasings, and
DPR on the same users and attributes with training phrasings (wording it has seen; not what the bars use),
and which evaluation phrasings the reader misreads on the task's users, with DPR's metrics on the misread
cases and on the rest (a diagnosis on test, used to choose nothing).
Writes benchmarks/results/prompt_tasks.{json,md} and a PNG of NDCG@10 per method.
"""
from __future__ import annotations

import argparse

from benchmarks.common import machine, machine_line, markdown_table, results_folder, write_results

TASKS = ("positive", "negative", "sequential")
BAR_METRIC = {"positive": "ndcg@10", "negative": "recall@10", "sequential": "ndcg@10"}


def difference_column(task: str, reference: str) -> str:
    return f"{BAR_METRIC[task]} minus {reference} [95% interval]"


def table_rows(methods: dict, task: str) -> list[dict]:
    """One row per method; a method compared with a reference gets the paired difference of the task's bar
    metric and its bootstrap interval over users (core.evaluate.paired_differences)."""
    from core.evaluate import describe_difference, split_differences

    rows = []
    for name, metrics in methods.items():
        plain, compared = split_differences(metrics)
        row = {"method": name, **plain}
        for key, differences in compared.items():
            row[difference_column(task, key.removeprefix("vs "))] = describe_difference(differences[BAR_METRIC[task]])
        rows.append(row)
    return rows


def plot(results: dict):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(task, backbone) for task in ("positive", "negative") for backbone in results.get(task, {})]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for axis, (task, backbone) in zip(axes[0], panels):
        methods = results[task][backbone]["methods"]
        names = list(methods)
        axis.bar(names, [methods[n]["ndcg@10"] for n in names], color="#4c72b0")
        axis.set_title(f"{task}, {backbone}")
        axis.set_ylabel("NDCG@10")
        axis.tick_params(axis="x", rotation=45)
    figure.tight_layout()
    figure.savefig(results_folder() / "prompt_tasks.png", dpi=110)


def grounding_accuracy(engine, backbone: str) -> list[dict]:
    """Share of phrasings grounded in their own attribute, per polarity and phrasing set."""
    import torch

    from core.prompts import attribute_vocabulary, phrasings

    model, _ = engine.dpr[backbone]
    vocab = attribute_vocabulary(engine.dataset)
    rows = []
    for negative in (False, True):
        for part in ("train", "eval"):
            labelled = [(index, text) for index, name in enumerate(vocab) for text in phrasings(name, negative, part)]
            texts = torch.from_numpy(engine.encoder.encode([text for _, text in labelled]))[None]
            with torch.no_grad():
                _, weights = model.ground(texts, torch.full(texts.shape[:2], negative))
            right = weights[0].argmax(-1) == torch.tensor([index for index, _ in labelled])
            rows.append({"backbone": backbone, "polarity": "avoid" if negative else "want", "phrasings": part,
                         "count": len(labelled), "grounded to the right attribute": float(right.float().mean())})
    return rows


def seen_wording(engine, backbone: str, task: str, split: str) -> dict:
    """DPR on the task's users and attributes, phrased with training phrasings instead of evaluation ones."""
    import torch

    from core.prompt_tasks import build_prompt_cases, evaluate_prompt_task
    from core.prompts import attribute_matrix, attribute_vocabulary
    from core.train_dpr import dpr_scorer

    vocab = attribute_vocabulary(engine.dataset)
    matrix = attribute_matrix(engine.dataset, vocab)
    net, (model, _) = engine.backbones[backbone], engine.dpr[backbone]
    cases = build_prompt_cases(engine.dataset, task, split, matrix, vocab, engine.encoder, "train")
    scorer = dpr_scorer(model, net, engine.item_text)
    return evaluate_prompt_task(cases, {"dpr": scorer}, torch.from_numpy(matrix), net.config.max_len)["dpr"]


def misreadings(engine, backbones: list[str], split: str) -> tuple[list[dict], list[dict]]:
    """(the misread evaluation phrasings of each prompt task, most cases first; DPR's metrics on the cases
    whose prompt the reader grounds in the wrong attribute and on the rest, per task and backbone)."""
    from collections import Counter

    import torch

    from core.prompt_tasks import build_prompt_cases, evaluate_prompt_task
    from core.prompts import attribute_matrix, attribute_vocabulary
    from core.train_dpr import dpr_scorer

    vocab = attribute_vocabulary(engine.dataset)
    matrix = attribute_matrix(engine.dataset, vocab)
    phrasings, metrics = [], []
    for task in ("positive", "negative"):
        cases = build_prompt_cases(engine.dataset, task, split, matrix, vocab, engine.encoder)
        model, _ = engine.dpr[backbones[0]]  # both checkpoints hold the same reader
        with torch.no_grad():
            _, weights = model.ground(cases.texts[:, None], torch.full((len(cases), 1), cases.negative))
        read = weights[:, 0].argmax(-1)
        wrong = read != cases.attributes
        counts = Counter((vocab[cases.attributes[i]], cases.phrases[i], vocab[read[i]])
                         for i in wrong.nonzero().flatten().tolist())
        phrasings += [{"task": task, "genre": genre, "phrasing": phrase, "read as": read_as, "cases": count}
                      for (genre, phrase, read_as), count in counts.most_common()]
        groups = {"misread": [u for u, w in zip(cases.users, wrong.tolist()) if w],
                  "read right": [u for u, w in zip(cases.users, wrong.tolist()) if not w]}
        for backbone in backbones:
            net, (model, _) = engine.backbones[backbone], engine.dpr[backbone]
            scorer = dpr_scorer(model, net, engine.item_text)
            for group, users in groups.items():
                if users:
                    subset = build_prompt_cases(engine.dataset, task, split, matrix, vocab, engine.encoder,
                                                users=users)
                    result = evaluate_prompt_task(subset, {"dpr": scorer}, torch.from_numpy(matrix),
                                                  net.config.max_len)["dpr"]
                    metrics.append({"task": task, "backbone": backbone, "cases": group, "count": len(users),
                                    **result})
    return phrasings, metrics


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    args = parser.parse_args(argv)
    from core.engine import Engine
    from core.run_evaluation import evaluate_model

    engine = Engine(models=["sasrec", "gru4rec", "dpr", "mixrec"])
    results, sections = {}, []
    for task in TASKS:
        results[task] = {}
        for backbone in ("sasrec", "gru4rec"):
            if not engine.is_available("dpr", backbone):
                sections.append(f"### {task}, {backbone}\n\nskipped: {engine.unavailable_reason('dpr', backbone)}")
                continue
            result = evaluate_model("dpr", task, args.split, backbone=backbone, engine=engine)
            results[task][backbone] = result
            share = "violation@10" if task == "negative" else "compliance@10"
            columns = ["method", "ndcg@10", "recall@10", "mrr@10", "ndcg@20", "recall@20"] + \
                ([share, difference_column(task, "filter")] if task != "sequential" else [])
            rows = table_rows(result["methods"], task)
            sections.append(f"### {task} task, {backbone} backbone ({result['users']} {args.split} users)\n\n"
                            + markdown_table(rows, columns))
    if engine.is_available("mixrec"):
        for task in TASKS:
            result = evaluate_model("mixrec", task, args.split, engine=engine)
            results[task]["mixrec"] = result
            extra = {"negative": ["violation@10", difference_column(task, "filter")],
                     "positive": ["compliance@10", difference_column(task, "filter")],
                     "sequential": [difference_column(task, "sasrec")]}[task]
            rows = table_rows(result["methods"], task)
            heading = "MixRec" if task == "sequential" else \
                "MixRec without and with the prompt in its context (baselines over SASRec)"
            sections.append(f"### {task} task, {heading} ({result['users']} {args.split} users)\n\n"
                            + markdown_table(rows, ["method", "ndcg@10", "recall@10", "mrr@10", "ndcg@20",
                                                    "recall@20", *extra]))
    else:
        sections.append(f"MixRec with the prompt in its context: skipped ({engine.unavailable_reason('mixrec', 'sasrec')}).")
    backbones = [b for b in ("sasrec", "gru4rec") if engine.is_available("dpr", b)]
    if backbones:
        grounding = grounding_accuracy(engine, backbones[0])  # both checkpoints hold the same reader
        labels = {"filter": "filter (oracle genre, no text)", "dpr": "dpr, evaluation phrasings"}
        seen = [{"backbone": b, "task": task, "method": "dpr, training phrasings",
                 **seen_wording(engine, b, task, args.split)} for b in backbones for task in ("positive", "negative")]
        seen += [{"backbone": b, "task": task, "method": labels[name], **metrics}
                 for b in backbones for task in ("positive", "negative")
                 for name, metrics in results[task][b]["methods"].items() if name in labels]
        seen.sort(key=lambda row: (row["backbone"], row["task"], row["method"]))
        misread, by_reading = misreadings(engine, backbones, args.split)
        results["language"] = {"grounding": grounding, "seen_wording": seen, "misread_phrasings": misread,
                               "by_reading": by_reading}
        sections.append("### Language or steering? DPR with wording it has seen\n\n"
                        "How often DPR's reader grounds a phrasing in its own genre (the reader is the same in "
                        "both checkpoints; `python -m benchmarks.grounding` compares it with other rules), then "
                        "DPR on the same users and genres phrased with its training phrasings (seen wording) "
                        "beside the evaluation phrasings and the filter:\n\n"
                        + markdown_table([{k: v for k, v in row.items() if k != "backbone"} for row in grounding],
                                         ["polarity", "phrasings", "count", "grounded to the right attribute"])
                        + "\n\n"
                        + markdown_table(seen, ["backbone", "task", "method", "ndcg@10", "recall@10",
                                                "compliance@10", "violation@10"])
                        + f"\n\nThe evaluation phrasings the reader misreads on these {args.split} users (a "
                        "diagnosis, used to choose nothing), then DPR on the misread cases and on the rest:\n\n"
                        + markdown_table(misread, ["task", "genre", "phrasing", "read as", "cases"])
                        + "\n\n"
                        + markdown_table(by_reading, ["task", "backbone", "cases", "count", "ndcg@10", "recall@10",
                                                      "compliance@10", "violation@10"]))
    info = machine()
    markdown = ("## Prompt-guided tasks on ML-100K (evaluation phrasings only)\n\n" + "\n\n".join(sections)
                + f"\n\n![NDCG@10 per method](prompt_tasks.png)\n\n{machine_line(info)}\n")
    plot(results)
    write_results("prompt_tasks", {"machine": info, "split": args.split, "results": results}, markdown)


if __name__ == "__main__":
    main()
