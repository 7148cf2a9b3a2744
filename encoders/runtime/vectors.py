"""Vector helpers of the pin space, numpy only: row-wise L2 normalisation and exact top-k by inner product.

Scores are inner products ``q · p`` (pass L2-normalised vectors for cosine). Used by pin-space
feedback at inference time (:mod:`encoders.runtime.pin_feedback`), by offline evaluation
(:mod:`encoders.eval`) and by relevance labelling.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation of ``(N, D)`` float32 (zero rows stay zero)."""
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(n, 1e-12)).astype(np.float32, copy=False)


def exact_top_k(
    queries: np.ndarray,
    index: np.ndarray,
    k: int,
    chunk_size: int = 256,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force top-``k`` by inner product.

    ``queries``: ``(Q, D)`` float32; ``index``: ``(N, D)`` float32. Scores are computed one query
    chunk at a time (peak extra memory ``chunk_size × N`` float32), top-k by ``argpartition`` then a
    sort of the ``k`` survivors. Returns ``(ids (Q, k') int64, scores (Q, k') float32)`` best first,
    with ``k' = min(k, N)``. Ties break towards the lower index row.
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    x = np.ascontiguousarray(index, dtype=np.float32)
    if q.ndim != 2 or x.ndim != 2:
        raise ValueError(f"queries and index must be 2-D, got shapes {q.shape} and {x.shape}")
    if q.shape[1] != x.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} != index dim {x.shape[1]}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kk = min(k, x.shape[0])
    ids = np.empty((q.shape[0], kk), dtype=np.int64)
    scores = np.empty((q.shape[0], kk), dtype=np.float32)
    starts: Iterable[int] = range(0, q.shape[0], chunk_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="exact top-k", unit="chunk")
    for s in starts:
        sc = q[s : s + chunk_size] @ x.T  # (c, N)
        if kk < x.shape[0]:
            part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        else:
            part = np.broadcast_to(np.arange(x.shape[0]), sc.shape).copy()
        part_sc = np.take_along_axis(sc, part, axis=1)
        # sort by score desc, then by row asc (lexsort: last key is primary)
        order = np.lexsort((part, -part_sc), axis=1)
        ids[s : s + chunk_size] = np.take_along_axis(part, order, axis=1)
        scores[s : s + chunk_size] = np.take_along_axis(part_sc, order, axis=1)
    return ids, scores
