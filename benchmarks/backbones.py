"""Train both backbones with the repo's own training command and measure them.

Writes benchmarks/results/backbones.{json,md}: test metrics at 10 and 20, best epoch, seconds to the best
validation score, total training seconds, peak memory of the training process, and the warm latency of one
`engine.recommend` call. Training goes to a scratch folder; the shipped checkpoints are measured by
`--shipped` (no training), which is what `--quick` runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks.common import (ROOT, machine, machine_line, markdown_table, run_with_peak_memory, time_calls,
                               write_results)

BACKBONES = ("sasrec", "gru4rec")


def measure(name: str, folder: Path, peak_mb=None) -> dict:
    from core.engine import Engine

    config = json.loads((folder / name / "config.json").read_text())
    engine = Engine(checkpoints=folder, models=[name])
    latency = time_calls(lambda: engine.recommend(name, user=196, k=10), count=200)
    return {"model": name, **{f"test {k}": v for k, v in config["test"].items()},
            "best epoch": config["best_epoch"], "seconds to best": config["seconds_to_best"],
            "training seconds": config["seconds_total"], "peak MB": peak_mb,
            "recommend p50 ms": latency["p50_ms"], "recommend p95 ms": latency["p95_ms"],
            "trained by": config["command"], "trained on": config["device"]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipped", action="store_true", help="measure the committed checkpoints, no training")
    args = parser.parse_args(argv)
    rows = []
    if args.shipped:
        folder = ROOT / "checkpoints" / "ml-100k"
        rows = [measure(name, folder) for name in BACKBONES]
    else:
        with tempfile.TemporaryDirectory(prefix="backbones-") as scratch:
            for name in BACKBONES:
                code, _, peak = run_with_peak_memory([sys.executable, "-m", "core", "train", "--model", name,
                                                      "--out", scratch, "--quiet"])
                if code != 0:
                    raise SystemExit(f"training {name} failed with exit code {code}")
                rows.append(measure(name, Path(scratch), peak))
    info = machine()
    columns = ["model", "test ndcg@10", "test recall@10", "test mrr@10", "test ndcg@20", "test recall@20",
               "best epoch", "seconds to best", "training seconds", "peak MB", "recommend p50 ms",
               "recommend p95 ms"]
    source = "the shipped checkpoints" if args.shipped else "checkpoints trained by this run"
    markdown = (f"## Backbones on ML-100K (full ranking, history excluded, test split)\n\n"
                f"{markdown_table(rows, columns)}\n\nMeasured on {source}; training command per model: "
                + "; ".join(f"`{r['trained by']}`" for r in rows) + f".\n\n{machine_line(info)}\n")
    write_results("backbones", {"machine": info, "source": source, "rows": rows}, markdown)


if __name__ == "__main__":
    main()
