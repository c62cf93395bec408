"""Prompt-guided tasks on ML-100K test users, evaluation phrasings only (never seen in training).

One table per task and backbone, every method in a row: the backbone (prompt ignored), the oracle hard filter
over the whole catalogue and over the backbone's top 100, the text rerank of the top 100, and DPR; then MixRec
without and with the prompt in its context. Writes benchmarks/results/prompt_tasks.{json,md}
and a PNG of NDCG@10 per method.
"""
from __future__ import annotations

import argparse

from benchmarks.common import RESULTS, machine, machine_line, markdown_table, write_results

TASKS = ("positive", "negative", "sequential")


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
    figure.savefig(RESULTS / "prompt_tasks.png", dpi=110)


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
                ([share] if task != "sequential" else [])
            rows = [{"method": name, **metrics} for name, metrics in result["methods"].items()]
            sections.append(f"### {task} task, {backbone} backbone ({result['users']} {args.split} users)\n\n"
                            + markdown_table(rows, columns))
    if engine.is_available("mixrec"):
        for task in TASKS:
            result = evaluate_model("mixrec", task, args.split, engine=engine)
            results[task]["mixrec"] = result
            shares = {"negative": ["violation@10"], "positive": ["compliance@10"]}.get(task, [])
            rows = [{"method": name, **metrics} for name, metrics in result["methods"].items()]
            heading = "MixRec" if task == "sequential" else \
                "MixRec without and with the prompt in its context (baselines over SASRec)"
            sections.append(f"### {task} task, {heading} ({result['users']} {args.split} users)\n\n"
                            + markdown_table(rows, ["method", "ndcg@10", "recall@10", "mrr@10", "ndcg@20",
                                                    "recall@20", *shares]))
    else:
        sections.append(f"MixRec with the prompt in its context: skipped ({engine.unavailable_reason('mixrec', 'sasrec')}).")
    info = machine()
    markdown = ("## Prompt-guided tasks on ML-100K (evaluation phrasings only)\n\n" + "\n\n".join(sections)
                + f"\n\n![NDCG@10 per method](prompt_tasks.png)\n\n{machine_line(info)}\n")
    plot(results)
    write_results("prompt_tasks", {"machine": info, "split": args.split, "results": results}, markdown)


if __name__ == "__main__":
    main()
