"""Inner-product retrieval over an item table with FAISS: exact by default, HNSW for large catalogues.

Seen items are excluded and score ties are broken by item id, so the same query always gives the same
ranking, and the exact index agrees with the evaluator's full ranking.
"""
from __future__ import annotations

import faiss
import numpy as np

from core.errors import SteerRecError

EXTRA = 16  # candidates fetched beyond k + seen, so ties at the cut can be ordered by id


class ItemIndex:
    """Row i of `vectors` is item i; row 0 (padding) is never returned."""

    def __init__(self, vectors: np.ndarray, kind: str = "exact", hnsw_neighbors: int = 32,
                 ef_search: int = 256, ef_construction: int = 80):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.size, self.dim = vectors.shape
        self.kind = kind
        if kind == "exact":
            self.index = faiss.IndexFlatIP(self.dim)
        elif kind == "hnsw":
            self.index = faiss.IndexHNSWFlat(self.dim, hnsw_neighbors, faiss.METRIC_INNER_PRODUCT)
            self.index.hnsw.efConstruction = ef_construction
            self.index.hnsw.efSearch = ef_search
        else:
            raise SteerRecError(f"unknown index kind {kind!r}: expected 'exact' or 'hnsw'")
        self.index.add(vectors)

    def search(self, queries: np.ndarray, k: int, exclude: list | None = None):
        """Top-k (ids, scores) per query row, never padding or an excluded item; rows shorter when the
        catalogue runs out."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        exclude = exclude or [()] * len(queries)
        widest = max(len(e) for e in exclude)
        fetch = min(self.size, k + widest + 1 + EXTRA)
        params = None
        if self.kind == "hnsw":  # per search, so that searches in parallel threads never touch shared state
            params = faiss.SearchParametersHNSW(efSearch=max(self.index.hnsw.efSearch, fetch))
        scores, ids = self.index.search(queries, fetch, params=params)
        results = []
        for row in range(len(queries)):
            banned = set(int(i) for i in exclude[row])
            banned.add(0)
            keep = [(float(s), int(i)) for s, i in zip(scores[row], ids[row]) if i >= 0 and int(i) not in banned]
            keep.sort(key=lambda pair: (-pair[0], pair[1]))
            keep = keep[:k]
            results.append((np.array([i for _, i in keep], dtype=np.int64),
                            np.array([s for s, _ in keep], dtype=np.float32)))
        return results
