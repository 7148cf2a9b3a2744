"""Exact top-k, Recall@k, index sampling and faiss HNSW against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.eval.retrieval import (
    HNSWConfig,
    HNSWIndex,
    ann_recall,
    pair_hit_rank,
    per_query_hits,
    recall_at_k,
    sample_index,
)
from encoders.runtime.vectors import exact_top_k


def _loop_recall(q: np.ndarray, x: np.ndarray, pair_q: np.ndarray, pair_p: np.ndarray, k: int) -> float:
    """Reference: for each pair, count the pins scoring strictly higher than the positive."""
    hits = 0
    for qi, pi in zip(pair_q, pair_p, strict=True):
        scores = [float(np.dot(q[qi], x[j])) for j in range(x.shape[0])]
        better = sum(1 for j, s in enumerate(scores) if s > scores[pi] or (s == scores[pi] and j < pi))
        hits += better < k
    return hits / len(pair_q)


def test_exact_top_k_matches_full_sort_for_any_chunk_size() -> None:
    rng = np.random.default_rng(1)
    q = rng.normal(size=(37, 8)).astype(np.float32)
    x = rng.normal(size=(300, 8)).astype(np.float32)
    ref = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :15]
    for chunk in (1, 7, 64, 1000):
        ids, scores = exact_top_k(q, x, 15, chunk_size=chunk)
        np.testing.assert_array_equal(ids, ref)
        assert np.all(np.diff(scores, axis=1) <= 0)
    ids, _ = exact_top_k(q, x[:5], 15)  # k larger than the index → the whole index, sorted
    assert ids.shape == (37, 5)
    np.testing.assert_array_equal(ids, np.argsort(-(q @ x[:5].T), axis=1, kind="stable"))


def test_recall_matches_brute_force_loop() -> None:
    rng = np.random.default_rng(2)
    q = rng.normal(size=(20, 6)).astype(np.float32)
    x = rng.normal(size=(150, 6)).astype(np.float32)
    pair_q = rng.integers(0, 20, size=60)
    pair_p = rng.integers(0, 150, size=60)
    ids, _ = exact_top_k(q, x, 50, chunk_size=8)
    rank = pair_hit_rank(ids, pair_q, pair_p)
    got = recall_at_k(rank, [1, 10, 50])
    for k in (1, 10, 50):
        assert got[k] == pytest.approx(_loop_recall(q, x, pair_q, pair_p, k))
    hits, pairs = per_query_hits(rank, pair_q, 20, 10)
    assert pairs.sum() == 60
    assert hits.sum() / pairs.sum() == pytest.approx(got[10])


def test_pair_hit_rank_ignores_padding() -> None:
    ranking = np.array([[3, -1, -1], [0, 1, 2]])
    np.testing.assert_array_equal(pair_hit_rank(ranking, np.array([0, 0, 1]), np.array([3, 1, 2])), [1, 0, 3])


def test_sample_index_keeps_positives_and_is_seeded() -> None:
    must = np.array([5, 17, 99, 5])
    a = sample_index(1000, must, 50, seed=3)
    assert a.size == 50 and np.unique(a).size == 50
    assert set(must) <= set(a.tolist())
    np.testing.assert_array_equal(a, sample_index(1000, must, 50, seed=3))
    assert not np.array_equal(a, sample_index(1000, must, 50, seed=4))
    np.testing.assert_array_equal(sample_index(10, must[:1], None), np.arange(10))
    with pytest.raises(ValueError, match="smaller than the 3 pins"):
        sample_index(1000, must, 2)


def test_hnsw_recall_close_to_exact() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.integers(0, 2000, 100)] + 0.3 * rng.normal(size=(100, 16)).astype(np.float32)
    exact, _ = exact_top_k(q, x, 10)
    index = HNSWIndex(x, HNSWConfig(m=16, ef_construction=100, ef_search=128))
    approx, _ = index.search(q, 10)
    assert approx.shape == (100, 10)
    assert ann_recall(approx, exact, 10) >= 0.9
    index.ef_search = 1
    assert index.ef_search == 1
    low, _ = index.search(q, 10)
    assert ann_recall(low, exact, 10) <= ann_recall(approx, exact, 10)
    assert ann_recall(exact, exact, 10) == 1.0
