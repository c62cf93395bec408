"""What every benchmark shares: the machine record, latency percentiles, peak memory, result files."""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import torch

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "benchmarks" / "results"  # the committed tables
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def machine() -> dict:
    return {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1), "torch": torch.__version__,
            "device": "cuda" if torch.cuda.is_available() else "cpu", "python": platform.python_version(),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m " + " ".join(shlex.quote(a) for a in [sys.argv[0].replace(str(ROOT) + "/", "")
                                                                         .replace("/", ".").removesuffix(".py"),
                                                                         *sys.argv[1:]])}


def results_folder() -> Path:
    """Where result files go (made if need be): STEERREC_RESULTS where it is set, else beside the committed
    tables."""
    folder = Path(os.environ.get("STEERREC_RESULTS", COMMITTED))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def smoke_run() -> None:
    """A smoke run's tables go to results/quick/ (not committed) unless STEERREC_RESULTS says where, so that a
    quick run never overwrites a committed table; child processes read the same setting."""
    os.environ.setdefault("STEERREC_RESULTS", str(COMMITTED / "quick"))


def quick_or_full(doc: str, quick: str, full: str, required: bool = False) -> argparse.ArgumentParser:
    """A benchmark's parser with the two mutually exclusive modes every benchmark shares."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=required)
    mode.add_argument("--quick", action="store_true", help=quick)
    mode.add_argument("--full", action="store_true", help=full)
    return parser


def memoised_encoder(encoder):
    """`encode(texts) -> (len(texts), dim)` that encodes each distinct text once (the phrasing studies ask
    about the same texts fold after fold)."""
    cache = {}

    def encode(texts):
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            cache.update(zip(missing, encoder.encode(missing)))
        return np.stack([cache[t] for t in texts])
    return encode


def percentiles(samples_ms) -> dict:
    values = np.asarray(samples_ms, dtype=float)
    return {"p50_ms": round(float(np.percentile(values, 50)), 3), "p95_ms": round(float(np.percentile(values, 95)), 3),
            "p99_ms": round(float(np.percentile(values, 99)), 3), "n": int(len(values))}


def time_calls(function, count: int, warmup: int = 10) -> dict:
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return percentiles(samples)


def run_with_peak_memory(command: list[str], log_path: Path | None = None) -> tuple[int, float, float]:
    """Run a command; return (exit code, wall seconds, peak resident memory in MB, polled every 0.1 s)."""
    started = time.perf_counter()
    log = open(log_path, "w") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    peak = 0.0
    watched = psutil.Process(process.pid)

    def watch():
        nonlocal peak
        while process.poll() is None:
            try:
                rss = watched.memory_info().rss + sum(c.memory_info().rss for c in watched.children(recursive=True))
                peak = max(peak, rss / 2**20)
            except psutil.Error:
                pass
            time.sleep(0.1)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    code = process.wait()
    watcher.join()
    return code, time.perf_counter() - started, round(peak, 1)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value):
        return f"{value:.4f}" if isinstance(value, float) and abs(value) < 10 else \
            (f"{value:.1f}" if isinstance(value, float) else str(value))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def machine_line(info: dict) -> str:
    return (f"_{info['date']}; {info['cores']} cores ({info['cpu']}), {info['memory_gb']} GB, torch {info['torch']} "
            f"on {info['device']}; command: `{info['command']}`_")


def write_results(name: str, data: dict, markdown: str):
    folder = results_folder()
    (folder / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")
    (folder / f"{name}.md").write_text(markdown.rstrip() + "\n")
    print(markdown)


def read_mixrec_run(path: Path, recorded: str, flag: str) -> dict:
    """A MixRec checkpoint's config (its folder or the config.json itself) that records `recorded`, what the
    training command's `flag` adds to it."""
    path = Path(path)
    config = json.loads((path / "config.json" if path.is_dir() else path).read_text())
    if config.get("model") != "mixrec" or not config.get(recorded):
        raise SystemExit(f"{path}: not a MixRec checkpoint trained with {flag}")
    return config


def mixrec_runs_parser(doc: str, runs: Path, which: str) -> argparse.ArgumentParser:
    """Arguments of a benchmark that reads MixRec runs: checkpoint folders or configs, by default those kept in
    `runs`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help=f"MixRec checkpoint folders (or their config.json) "
                        f"{which} (default: every config in {runs.relative_to(ROOT)}/)")
    return parser

