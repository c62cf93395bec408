import numpy as np
import torch

from core.evaluate import exclude_history
from core.index import ItemIndex


def _full_ranking(vectors, query, exclude, k):
    scores = exclude_history(torch.from_numpy(query @ vectors.T)[None].clone(), [exclude])
    scores[0, 0] = float("-inf")
    order = sorted(range(len(vectors)), key=lambda i: (-scores[0, i].item(), i))
    return [i for i in order if torch.isfinite(scores[0, i])][:k]


def test_exact_search_matches_full_ranking_with_exclusions():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    query = rng.normal(size=16).astype(np.float32)
    exclude = np.array([3, 17, 42])
    ((ids, scores),) = ItemIndex(vectors).search(query, 20, [exclude])
    assert list(ids) == _full_ranking(vectors, query, exclude, 20)
    assert 0 not in ids and not set(ids) & set(exclude)
    assert np.all(np.diff(scores) <= 0)


def test_ties_are_broken_by_item_id():
    vectors = np.ones((50, 4), dtype=np.float32)
    ((ids, _),) = ItemIndex(vectors).search(np.ones(4, dtype=np.float32), 5, [np.array([2])])
    assert list(ids) == [1, 3, 4, 5, 6]


def test_k_beyond_catalogue_returns_what_there_is():
    vectors = np.eye(6, dtype=np.float32)
    ((ids, _),) = ItemIndex(vectors).search(np.ones(6, dtype=np.float32), 100, [np.array([1])])
    assert sorted(ids) == [2, 3, 4, 5]


def test_hnsw_agrees_with_exact_search():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(5000, 32)).astype(np.float32)
    queries = rng.normal(size=(20, 32)).astype(np.float32)
    exact = ItemIndex(vectors).search(queries, 10)
    approx = ItemIndex(vectors, "hnsw").search(queries, 10)
    overlap = np.mean([len(set(a[0]) & set(b[0])) / 10 for a, b in zip(exact, approx)])
    assert overlap >= 0.9
    for query, (ids, scores) in zip(queries, approx):  # its scores are the inner products, as the exact index's
        np.testing.assert_allclose(scores, vectors[ids] @ query, rtol=1e-4, atol=1e-3)


def test_a_long_excluded_history_at_the_top_still_leaves_k_items():
    vectors = np.zeros((101, 2), dtype=np.float32)
    vectors[:, 0] = np.arange(101, 0, -1)  # item 1 best, then 2, ...
    ((ids, _),) = ItemIndex(vectors).search(np.array([1.0, 0.0], dtype=np.float32), 5, [np.arange(1, 41)])
    assert list(ids) == [41, 42, 43, 44, 45]
