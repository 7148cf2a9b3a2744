"""Graded ranking metrics on one ranked list, shared by offline evaluation and the A/B module.

Conventions (stated once, used everywhere):

* ``grades`` are the judged grades of the served results in rank order; an **unjudged result
  counts as grade 0 / not relevant** (the conservative choice: an arm cannot gain by serving
  unjudged items). Callers pass ``nan`` or use :func:`grades_for` to apply it.
* nDCG uses gain ``2**g - 1`` and discount ``log2(rank + 1)`` with ``g = grade - min_grade``
  (so the lowest grade on the scale has zero gain); the ideal ranking is formed from **all
  judged items of the query**, not only the served ones.
* P@k: the share of the first k positions holding a result with ``grade >= relevant_grade``;
  missing positions (fewer than k results) count as not relevant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def grades_for(ranked_ids: Sequence[str], judged: Mapping[str, float], unjudged: float = np.nan) -> np.ndarray:
    """Grades of ``ranked_ids`` looked up in ``judged``; unjudged items get ``unjudged`` → ``(len,)``."""
    return np.asarray([judged.get(pid, unjudged) for pid in ranked_ids], dtype=np.float64)


def dcg_at_k(gains: np.ndarray, k: int) -> float:
    """Discounted cumulative gain of the first ``k`` gains (gain already transformed)."""
    g = np.asarray(gains, dtype=np.float64)[:k]
    return float(np.sum(g / np.log2(np.arange(2, g.size + 2))))


def ndcg_at_k(grades: Sequence[float], all_judged_grades: Sequence[float], k: int = 10, min_grade: float = 0.0) -> float:
    """nDCG@k of one ranked list.

    ``grades``: grades of served results in rank order (``nan`` = unjudged → gain 0).
    ``all_judged_grades``: every judged grade of the query (defines the ideal DCG).
    Returns a value in [0, 1]; ``nan`` when the query has no item with positive gain.
    """
    g = np.nan_to_num(np.asarray(grades, dtype=np.float64) - min_grade, nan=0.0).clip(min=0.0)
    ideal = np.sort(np.clip(np.asarray(all_judged_grades, dtype=np.float64) - min_grade, 0.0, None))[::-1]
    idcg = dcg_at_k(2.0**ideal - 1.0, k)
    if idcg <= 0.0:
        return float("nan")
    return dcg_at_k(2.0**g - 1.0, k) / idcg


def precision_at_k(grades: Sequence[float], k: int = 8, relevant_grade: float = 1.0) -> float:
    """Share of the first ``k`` positions with ``grade >= relevant_grade`` (unjudged/missing = not)."""
    g = np.nan_to_num(np.asarray(grades, dtype=np.float64)[:k], nan=-np.inf)
    return float(np.sum(g >= relevant_grade)) / float(k)
