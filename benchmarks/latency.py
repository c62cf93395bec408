"""Per-model latency on the real data: one `engine.recommend` call per request, warm, 200 requests after
warm-up, with torch using 1 and then 2 threads. DPR is timed with and without a prompt, and its steering
alone (prompt already encoded) is compared with the backbone's own cost in the same run. The engine keeps
recent prompts' encodings (MiniLM's for DPR, the LLM's keys and values for MixRec), so DPR and MixRec are also
timed with those caches emptied before every request (a prompt never typed before, its encoding included).
MixRec is timed as served (item cache) and uncached (the whole token sequence through the LLM, 20 requests),
in the same run. The engine's user-vector caches are off, so every request runs its model.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import machine, machine_line, markdown_table, time_calls, write_results

PROMPT = {"want": ["something that makes me laugh"], "avoid": ["horror"]}


def request(engine, model: str, user, options: dict):
    """One recommend call; with `fresh`, the engine first forgets every prompt, so the call encodes its own."""
    if options.pop("fresh", False):
        engine.forget_prompts()
    return engine.recommend(model, user=user, k=10, **options)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args(argv)
    from core.engine import Engine
    from core.evaluate import pad_left

    engine = Engine(models=["sasrec", "gru4rec", "dpr", "mixrec"], user_vector_cache=0)
    users = [engine.dataset.user_ids[u] for u in range(1, engine.dataset.num_users + 1)]
    rng = np.random.default_rng(0)
    cases = []
    for backbone in ("sasrec", "gru4rec"):
        cases.append((backbone, backbone, {}))
        if engine.is_available("dpr", backbone):
            cases.append((f"dpr ({backbone}), no prompt", "dpr", {"backbone": backbone}))
            cases.append((f"dpr ({backbone}), want + avoid", "dpr", {"backbone": backbone, **PROMPT}))
            cases.append((f"dpr ({backbone}), want + avoid, new prompts", "dpr",
                          {"backbone": backbone, **PROMPT, "fresh": True}))
    if engine.is_available("mixrec"):
        cases.append(("mixrec (item cache)", "mixrec", {}))
        cases.append(("mixrec (item cache), want + avoid", "mixrec", PROMPT))
        cases.append(("mixrec (item cache), want + avoid, new prompts", "mixrec", {**PROMPT, "fresh": True}))
    rows = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for label, model, options in cases:
            picks = iter(rng.choice(users, args.requests + 20))
            timing = time_calls(lambda: request(engine, model, next(picks), dict(options)), count=args.requests,
                                warmup=20)
            rows.append({"model": label, "threads": threads, **timing})
        # steering alone: the prompt is encoded once, then only the fusion and experts run
        if engine.is_available("dpr", "sasrec"):
            dpr, _ = engine.dpr["sasrec"]
            texts = torch.from_numpy(engine.encoder.encode_prompts(PROMPT["want"] + PROMPT["avoid"]))[None]
            negative = torch.tensor([[False, True]])
            history = engine.dataset.sequences[1]
            user = engine.user_vector("sasrec", history)
            backbone = time_calls(lambda: engine.user_vector("sasrec", history), count=args.requests)
            steer = time_calls(lambda: dpr(user, texts, negative, torch.ones_like(negative)),
                               count=args.requests)
            rows.append({"model": "sasrec user vector only", "threads": threads, **backbone})
            rows.append({"model": "dpr steering only (2 prompts)", "threads": threads, **steer})
        if engine.is_available("mixrec"):
            mixrec, _ = engine.mixrec
            sequences = iter([pad_left([engine.dataset.sequences[u]], mixrec.config.max_len)
                              for u in rng.integers(1, engine.dataset.num_users + 1, 25)])
            with torch.inference_mode():
                uncached = time_calls(lambda: mixrec.user_vector(next(sequences), cached=False), count=20,
                                      warmup=5)
            rows.append({"model": "mixrec uncached user vector (whole token sequence)", "threads": threads,
                         **uncached})
    info = machine()
    markdown = ("## Latency per request on ML-100K (warm, one user per request, k = 10)\n\n"
                + markdown_table(rows, ["model", "threads", "p50_ms", "p95_ms", "p99_ms", "n"])
                + f"\n\n{machine_line(info)}\n")
    write_results("latency", {"machine": info, "rows": rows}, markdown)


if __name__ == "__main__":
    main()
