"""How retrieval cost grows with the catalogue: synthetic clustered item tables from 10 thousand to 1 million
items (and as many users' queries as we time), exact inner-product search against HNSW.

Per size: index build seconds, index memory, recommend latency p50/p95 (user vector -> top 10 with 50 seen
items excluded) for exact and HNSW search, HNSW recall@10 against exact search, and DPR's steering cost on
top (the fusion and experts for one want and one avoid prompt, encoded beforehand). Query and item
vectors are 96-d: 64 collaborative + 32 semantic dimensions, as in DPR's steered search.

Synthetic queries look like the items; real ones need not. So a second table takes ML-100K's own queries (every
user's SASRec vector, and DPR's steered query for a want and an avoid) and compares the top 10 of the HNSW
index (`core.index.ItemIndex`, which turns inner products into distances) and of FAISS's plain inner-product
HNSW with exact search.
"""
from __future__ import annotations

import time

import numpy as np
import psutil
import torch

from benchmarks.common import (machine, machine_line, markdown_table, percentiles, quick_or_full,
                               results_folder, smoke_run, write_results)

DIM, SEMANTIC, CLUSTERS, QUERIES = 64, 32, 512, 200
PROMPTS = [("something that makes me laugh", "horror"), ("space and aliens", "romance"), ("a mystery to solve", "war"),
           ("animated films", "musicals"), ("gunslingers in the Wild West", "dramas"), ("a love story", "action")]


def catalogue(size: int, rng: np.random.Generator) -> np.ndarray:
    centers = rng.normal(size=(CLUSTERS, DIM + SEMANTIC)).astype(np.float32)
    items = centers[rng.integers(CLUSTERS, size=size)] + 0.6 * rng.normal(size=(size, DIM + SEMANTIC))
    return items.astype(np.float32)


def resident_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def measure(size: int, rng: np.random.Generator) -> dict:
    from core.index import ItemIndex
    from core.models.dpr import DPR, DPRConfig

    items = catalogue(size, rng)
    queries = items[rng.integers(1, size, QUERIES)] + 0.3 * rng.normal(size=(QUERIES, DIM + SEMANTIC))
    queries = queries.astype(np.float32)
    seen = [rng.integers(1, size, 50) for _ in range(QUERIES)]
    row = {"items": size}
    results = {}
    for kind in ("exact", "hnsw"):
        before = resident_mb()
        started = time.perf_counter()
        index = ItemIndex(items, kind)
        row[f"{kind} build s"] = round(time.perf_counter() - started, 2)
        row[f"{kind} MB"] = round(resident_mb() - before, 1)
        samples, results[kind] = [], []
        for query, exclude in zip(queries, seen):
            started = time.perf_counter()
            results[kind].append(index.search(query, 10, [exclude])[0][0])
            samples.append((time.perf_counter() - started) * 1000)
        timing = percentiles(samples)
        row[f"{kind} p50 ms"], row[f"{kind} p95 ms"] = timing["p50_ms"], timing["p95_ms"]
        del index
    row["hnsw recall@10"] = round(float(np.mean([len(set(a) & set(b)) / 10
                                                 for a, b in zip(results["exact"], results["hnsw"])])), 4)
    torch.manual_seed(0)
    dpr = DPR(DPRConfig()).eval()
    user, texts = torch.randn(1, DIM), torch.randn(1, 2, 384)
    negative = torch.tensor([[False, True]])
    samples = []
    with torch.no_grad():
        for _ in range(QUERIES):
            started = time.perf_counter()
            dpr(user, texts, negative, torch.ones_like(negative))
            samples.append((time.perf_counter() - started) * 1000)
    row["steering p50 ms"] = percentiles(samples)["p50_ms"]
    row["steered hnsw p50 ms"] = round(row["hnsw p50 ms"] + row["steering p50 ms"], 3)
    return row


def real_queries() -> list[dict]:
    """HNSW recall@10 against exact search on ML-100K's own queries, each user's history excluded (as served)."""
    import faiss

    from core.engine import Engine
    from core.index import ItemIndex

    engine = Engine(models=["sasrec", "dpr"])
    dataset, (dpr, steered_index) = engine.dataset, engine.dpr["sasrec"]
    histories = [dataset.split(user, "test")[0] for user in range(1, dataset.num_users + 1)]
    users = torch.cat([engine.user_vector("sasrec", history) for history in histories])
    texts = torch.from_numpy(engine.encoder.encode_prompts([text for pair in PROMPTS for text in pair]))
    negative = torch.tensor([[False, True]])
    steered = []
    with torch.no_grad():
        for row, user in enumerate(users):
            pair = row % len(PROMPTS)
            steered_user, query, _, _ = dpr(user[None], texts[2 * pair:2 * pair + 2][None], negative,
                                            torch.ones_like(negative))
            steered.append(torch.cat([steered_user, query], 1))
    cases = {"SASRec user vector": (engine.indexes["sasrec"], users.numpy()),
             "DPR steered query (a want and an avoid)": (steered_index, torch.cat(steered).numpy())}
    rows = []
    for name, (exact, queries) in cases.items():
        vectors = exact.index.reconstruct_n(0, exact.size)
        lifted = ItemIndex(vectors, "hnsw")
        plain = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)  # ItemIndex's 32 neighbours
        plain.hnsw.efConstruction, plain.hnsw.efSearch = lifted.index.hnsw.efConstruction, lifted.index.hnsw.efSearch
        plain.add(vectors)
        recalls = {"ItemIndex hnsw": [], "plain inner-product HNSW": []}
        for query, history in zip(queries, histories):
            seen = set(history.tolist()) | {0}
            truth = set(exact.search(query, 10, [history])[0][0].tolist())
            found = {"ItemIndex hnsw": lifted.search(query, 10, [history])[0][0].tolist(),
                     "plain inner-product HNSW": [i for i in plain.search(query[None], 10 + len(seen))[1][0]
                                                  if i >= 0 and i not in seen][:10]}
            for method, ids in found.items():
                recalls[method].append(len(truth & set(ids)) / 10)
        rows.append({"queries": name, "users": len(queries),
                     **{f"{method} recall@10": round(float(np.mean(values)), 4) for method, values in recalls.items()}})
    return rows


def plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["items"] for r in rows]
    figure, (latency, memory) = plt.subplots(1, 2, figsize=(10, 3.8))
    for kind in ("exact", "hnsw"):
        latency.loglog(sizes, [r[f"{kind} p50 ms"] for r in rows], "o-", label=f"{kind} p50")
        memory.loglog(sizes, [max(r[f"{kind} MB"], 0.1) for r in rows], "o-", label=kind)
    latency.loglog(sizes, [r["steered hnsw p50 ms"] for r in rows], "s--", label="DPR steered, hnsw p50")
    latency.set_xlabel("items"), latency.set_ylabel("ms per request"), latency.legend()
    memory.set_xlabel("items"), memory.set_ylabel("index MB"), memory.legend()
    figure.tight_layout()
    figure.savefig(results_folder() / "scaling.png", dpi=110)


def growth(rows, key) -> float:
    """Slope of log(cost) against log(items): 1 is linear, 0 is constant."""
    sizes = np.log([r["items"] for r in rows])
    values = np.log([max(r[key], 1e-3) for r in rows])
    return round(float(np.polyfit(sizes, values, 1)[0]), 2) if len(rows) > 1 else float("nan")


def main(argv=None):
    args = quick_or_full(__doc__, "10k and 100k items (default)", "10k, 100k and 1M items").parse_args(argv)
    if not args.full:
        smoke_run()
    torch.set_num_threads(2)
    sizes = [10_000, 100_000, 1_000_000] if args.full else [10_000, 100_000]
    rng = np.random.default_rng(0)
    rows = [measure(size, rng) for size in sizes]
    real = real_queries()
    plot(rows)
    info = machine()
    columns = ["items", "exact build s", "exact MB", "exact p50 ms", "exact p95 ms", "hnsw build s", "hnsw MB",
               "hnsw p50 ms", "hnsw p95 ms", "hnsw recall@10", "steering p50 ms", "steered hnsw p50 ms"]
    slopes = {key: growth(rows, key) for key in ("exact p50 ms", "hnsw p50 ms", "exact MB", "hnsw MB")}
    markdown = ("## Scaling with catalogue size (synthetic, 96-d, clustered)\n\n" + markdown_table(rows, columns)
                + "\n\nGrowth exponents (slope of log cost against log items; 1 = linear): "
                + ", ".join(f"{k} {v}" for k, v in slopes.items())
                + "\n\n![latency and memory against catalogue size](scaling.png)\n\n"
                + "### HNSW on ML-100K's own queries (test histories, against exact search)\n\n"
                + markdown_table(real, list(real[0])) + f"\n\n{machine_line(info)}\n")
    write_results("scaling", {"machine": info, "rows": rows, "growth": slopes, "real_queries": real}, markdown)


if __name__ == "__main__":
    main()
