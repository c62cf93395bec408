"""MixRec's expert search side by side: what did more Bayesian-optimisation trials find?

Reads the search that `python -m core train --model mixrec --search-trials N` records in a checkpoint's
config.json: the shipped checkpoint (the 2-core CPU run) and other runs, those named on the command line or,
by default, the configs kept in benchmarks/results/mixrec_search_runs/ (one trained with `--device cuda` and
many more trials). For each: the spread of the trial scores,
the best score found after so many trials (TPE draws its first trials at random, then models the scores), the
architecture chosen, and the final model's validation and test NDCG@10 beside SASRec's. Nothing is trained
here; every figure is the one the training command recorded. Writes benchmarks/results/mixrec_search.{json,md}.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

from benchmarks.common import (ROOT, machine, machine_line, markdown_table, mixrec_runs_parser, read_mixrec_run,
                               write_results)

SHIPPED = ROOT / "checkpoints" / "ml-100k"
RUNS = ROOT / "benchmarks" / "results" / "mixrec_search_runs"  # inputs: committed configs
BEST_AFTER = (6, 10, 30, 60, 90)  # trial counts at which the best score so far is reported


def read_run(path: Path) -> dict:
    return read_mixrec_run(path, "search", "--search-trials")


def summary(config: dict, label: str, sasrec: dict) -> dict:
    search = config["search"]
    scores = [row["valid_ndcg@10"] for row in search["history"]]
    row = {"run": label, "device": config["device"], "command": config["command"],
           "trials": search["trials"], "random startup trials": search.get("random_startup_trials", 10),
           "distinct architectures": len({json.dumps(row["groups"]) for row in search["history"]}),
           "trials s (sum)": round(sum(row["seconds"] for row in search["history"]), 1),
           "s per trial": f"{sum(row['seconds'] for row in search['history']) / len(scores):.1f}",
           "training command s": config["seconds_total"],
           "trial valid min": min(scores), "trial valid median": statistics.median(scores),
           "trial valid max": max(scores),
           "best architecture (one pair per layer group)": " · ".join("+".join(pair) for pair in search["best"]["groups"]),
           "final valid ndcg@10": config["valid"]["ndcg@10"], "final test ndcg@10": config["test"]["ndcg@10"],
           "test minus SASRec": config["test"]["ndcg@10"] - sasrec["test"]["ndcg@10"]}
    for count in BEST_AFTER:
        if count <= len(scores):
            row[f"best after {count}"] = max(scores[:count])
    return row


def main(argv=None):
    args = mixrec_runs_parser(__doc__, RUNS, "besides the shipped one").parse_args(argv)
    args.runs = args.runs or sorted(RUNS.glob("*.json"))
    sasrec = json.loads((SHIPPED / "sasrec" / "config.json").read_text())
    configs = {"shipped": read_run(SHIPPED / "mixrec"), **{path.stem: read_run(path) for path in args.runs}}
    rows = [summary(config, label, sasrec) for label, config in configs.items()]
    info = machine()
    best_after = [f"best after {count}" for count in BEST_AFTER if any(f"best after {count}" in r for r in rows)]
    markdown = (
        "## MixRec's expert search: 6 trials against many (ML-100K)\n\n"
        f"SASRec (shipped): valid NDCG@10 {sasrec['valid']['ndcg@10']:.4f}, test {sasrec['test']['ndcg@10']:.4f}. "
        "Every trial trains one epoch over half the training windows from the same seed and is scored by "
        "validation NDCG@10; the final model then trains with the best trial's architecture. Figures as the "
        "training command recorded them in each checkpoint's config.json, on the device named in the row (the "
        "line at the end names the machine that read them).\n\n"
        + markdown_table(rows, ["run", "device", "trials", "distinct architectures", "trials s (sum)", "s per trial",
                                "training command s",
                                "final valid ndcg@10", "final test ndcg@10", "test minus SASRec"])
        + "\n\nTrial scores (validation NDCG@10) and the best found after so many trials:\n\n"
        + markdown_table(rows, ["run", "trial valid min", "trial valid median", "trial valid max", *best_after])
        + "\n\n" + markdown_table(rows, ["run", "best architecture (one pair per layer group)"])
        + "\n\nCommands: " + "; ".join(f"{row['run']}: `{row['command']}`" for row in rows)
        + f"\n\n{machine_line(info)}\n")
    write_results("mixrec_search", {"machine": info, "sasrec": {k: sasrec[k] for k in ("valid", "test")},
                                    "rows": rows, "studies": {label: c["search"] for label, c in configs.items()}},
                  markdown)


if __name__ == "__main__":
    main()
