"""Mined hard negatives: pins ranked high for a training query that are not known positives.

For each distinct training query we retrieve the top ``window_hi`` pins with BM25 over pin texts
(``bm25s``) and/or with the zero-shot tower against the frozen pin embeddings, keep ranks
``window_lo ≤ rank < window_hi`` (0-based; the very top is skipped because unjudged relevant items
concentrate there), and drop

* every pin engaged with the query (its known positives), and
* every pin judged for the query with ``grade >= exclude_grade`` (when judgments exist).

Pins judged *below* that grade are kept — they are certain negatives. Unjudged pins in the window
may still be relevant ("false negatives"); the rank window and the sampling of only a few per query
per step limit the damage. See ``docs/training.md``.

The result is a :class:`HardNegatives` table (query → candidate pin indices) cached as
``hard_negatives.npz`` in the run directory and computed once per run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CACHE_FILE = "hard_negatives.npz"


@dataclass
class HardNegatives:
    """``candidates[query]`` = int64 array of pin indices to draw hard negatives from."""

    candidates: dict[str, np.ndarray]

    def sample(self, queries: Sequence[str], per_query: int, rng: np.random.Generator) -> np.ndarray:
        """Up to ``per_query`` random candidates for each query, concatenated → ``(≤ B·per_query,)`` int64."""
        out = []
        for q in queries:
            c = self.candidates.get(q)
            if c is None or len(c) == 0 or per_query <= 0:
                continue
            out.append(rng.choice(c, size=min(per_query, len(c)), replace=False))
        return np.concatenate(out).astype(np.int64) if out else np.zeros(0, dtype=np.int64)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        queries = list(self.candidates)
        lengths = np.array([len(self.candidates[q]) for q in queries], dtype=np.int64)
        flat = np.concatenate([self.candidates[q] for q in queries]) if queries else np.zeros(0, np.int64)
        np.savez_compressed(path, queries=np.array(queries, dtype=object), lengths=lengths, flat=flat)
        return path

    @classmethod
    def load(cls, path: str | Path) -> HardNegatives:
        z = np.load(path, allow_pickle=True)
        offsets = np.concatenate([[0], np.cumsum(z["lengths"])])
        flat = z["flat"].astype(np.int64)
        return cls({q: flat[offsets[i] : offsets[i + 1]] for i, q in enumerate(z["queries"].tolist())})


def bm25_rankings(queries: Sequence[str], pin_texts: Sequence[str], k: int, threads: int = 2) -> np.ndarray:
    """Top-``k`` pin indices per query by BM25 (:class:`encoders.eval.baselines.BM25Retriever`, the same
    index as the evaluation baseline) → ``(Q, k)`` int64; ``-1`` where no query term matched."""
    from encoders.eval.baselines import BM25Retriever

    return BM25Retriever(pin_texts).search(queries, k)[0]


def dense_rankings(query_emb: np.ndarray, pin_emb: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Top-``k`` pin indices per query by dot product: ``query_emb (Q, D)``, ``pin_emb (P, D)`` → ``(Q, k)``."""
    k = min(k, pin_emb.shape[0])
    out = np.zeros((query_emb.shape[0], k), dtype=np.int64)
    for s in range(0, query_emb.shape[0], chunk):
        scores = query_emb[s : s + chunk] @ pin_emb.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1)
        out[s : s + chunk] = np.take_along_axis(top, order, axis=1)
    return out


def select_candidates(
    queries: Sequence[str],
    rankings: Sequence[np.ndarray],
    positives: Mapping[str, set[int]],
    judged: Mapping[str, Mapping[int, float]] | None = None,
    window: tuple[int, int] = (10, 100),
    exclude_grade: float | None = 2.0,
) -> HardNegatives:
    """Merge ranked lists ``rankings[s] (Q, ≥window_hi)`` into per-query candidates.

    Keeps ranks in ``[window[0], window[1])`` of every source, drops known ``positives[query]`` and
    pins with ``judged[query][pin] >= exclude_grade``; order-preserving de-duplication.
    """
    lo, hi = window
    if not 0 <= lo < hi:
        raise ValueError(f"rank window must satisfy 0 <= lo < hi, got {window}")
    out: dict[str, np.ndarray] = {}
    for qi, q in enumerate(queries):
        bad = set(positives.get(q, ()))
        if judged is not None and exclude_grade is not None:
            bad |= {p for p, g in judged.get(q, {}).items() if g >= exclude_grade}
        keep: dict[int, None] = {}
        for r in rankings:
            for p in r[qi, lo:hi].tolist():
                if p >= 0 and p not in bad:  # -1: no match at that rank
                    keep[p] = None
        out[q] = np.fromiter(keep, dtype=np.int64, count=len(keep))
    return HardNegatives(out)
