"""Retrieval over a pin index: Recall@k, faiss HNSW and its recall (exact top-k: :mod:`encoders.runtime.vectors`).

Conventions:

* Scores are inner products ``q · p`` (pass L2-normalised vectors for cosine).
* A ranking is an ``(Q, K)`` int64 array of *index row* positions, best first; ``-1`` pads rows
  that have fewer than ``K`` results (only possible for lexical systems).
* Recall@k is the SearchSage paper's: the share of held-out (query, engaged pin) **pairs** whose
  pin is among the top ``k`` results of its query (a micro average over pairs, not over queries).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from encoders.eval.config import HNSWConfig  # re-exported: its home was here


def pair_hit_rank(ranking: np.ndarray, pair_query: np.ndarray, pair_pin: np.ndarray) -> np.ndarray:
    """1-based rank of each pair's pin in its query's ranking, ``0`` when not retrieved.

    ``ranking``: ``(Q, K)`` index rows; ``pair_query``: ``(P,)`` query row of each pair;
    ``pair_pin``: ``(P,)`` index row of each pair's pin → ``(P,)`` int64.
    """
    rows = ranking[np.asarray(pair_query, dtype=np.int64)]  # (P, K)
    match = rows == np.asarray(pair_pin, dtype=np.int64)[:, None]
    found = match.any(axis=1)
    return np.where(found, match.argmax(axis=1) + 1, 0).astype(np.int64)


def recall_at_k(hit_rank: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Recall@k for each ``k`` from the pair ranks of :func:`pair_hit_rank` (``nan`` with no pairs)."""
    r = np.asarray(hit_rank)
    if r.size == 0:
        return {int(k): float("nan") for k in ks}
    return {int(k): float(np.mean((r >= 1) & (r <= k))) for k in ks}


def per_query_hits(hit_rank: np.ndarray, pair_query: np.ndarray, n_queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query (hits@k, pairs) counts, each ``(Q,)`` float64 — the units a query bootstrap resamples."""
    pq = np.asarray(pair_query, dtype=np.int64)
    hits = np.bincount(pq, weights=((hit_rank >= 1) & (hit_rank <= k)).astype(np.float64), minlength=n_queries)
    pairs = np.bincount(pq, minlength=n_queries).astype(np.float64)
    return hits, pairs


def sample_index(n_pins: int, must_include: np.ndarray, size: int | None, seed: int = 0) -> np.ndarray:
    """Rows of the pin table that form the retrieval index, sorted ascending.

    ``size=None`` (or ``>= n_pins``) → all pins. Otherwise a uniform random sample of ``size``
    pins (seeded) that always contains every row in ``must_include`` (the held-out positives).
    """
    if size is None or size >= n_pins:
        return np.arange(n_pins, dtype=np.int64)
    must = np.unique(np.asarray(must_include, dtype=np.int64))
    if size < must.size:
        raise ValueError(
            f"index size {size} is smaller than the {must.size} pins that must be in it "
            "(every held-out positive); use a larger --index-size"
        )
    rest = np.setdiff1d(np.arange(n_pins, dtype=np.int64), must, assume_unique=True)
    rng = np.random.default_rng(seed)
    extra = rng.choice(rest, size=size - must.size, replace=False)
    return np.sort(np.concatenate([must, extra]))


class HNSWIndex:
    """An inner-product faiss HNSW index over ``(N, D)`` float32 vectors."""

    def __init__(self, vectors: np.ndarray, config: HNSWConfig | None = None):
        import faiss

        self.config = config or HNSWConfig()
        x = np.ascontiguousarray(vectors, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"HNSW needs a non-empty (N, D) array, got shape {x.shape}")
        self.index = faiss.IndexHNSWFlat(x.shape[1], self.config.m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = self.config.ef_construction
        self.index.add(x)
        self.ef_search = self.config.ef_search

    @property
    def ef_search(self) -> int:
        return int(self.index.hnsw.efSearch)

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self.index.hnsw.efSearch = int(value)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Approximate top-``k``: ``(ids (Q, k) int64, scores (Q, k) float32)``, ``-1`` ids when short."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = self.index.search(q, min(k, self.index.ntotal))
        return ids.astype(np.int64), scores


def ann_recall(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of the exact top-``k`` found in the approximate top-``k`` (both ``(Q, >=k)``)."""
    a, e = np.asarray(approx)[:, :k], np.asarray(exact)[:, :k]
    if a.shape[0] == 0:
        return float("nan")
    found = [np.intersect1d(a[i][a[i] >= 0], e[i]).size / max(e[i].size, 1) for i in range(a.shape[0])]
    return float(np.mean(found))
