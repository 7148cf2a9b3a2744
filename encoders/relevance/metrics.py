"""Per-query relevance metrics of one system's scores against the judged grades (pure numpy).

For one query with ``n`` judged items, ``scores (n,)`` (higher = more relevant) and ``grades (n,)``:

* **Kendall's tau-b** between scores and grades, ties handled as :func:`scipy.stats.kendalltau`
  (``Σ sign(Δs)·sign(Δg) / sqrt(n_s · n_g)`` over item pairs, ``n_s``/``n_g`` = pairs not tied in
  scores/grades). A constant score list orders nothing: :func:`kendall_tau_b` returns ``nan``
  there (as scipy), :func:`query_metrics` counts it as ``0`` so every system is averaged over the
  same queries.
* **nDCG@k** of the ranking by score, discount ``log2(rank + 1)``, with the *exponential gain*
  ``2**(2·(grade − lowest)) − 1`` or the *linear gain* ``grade − lowest`` (``lowest`` = the lowest
  grade of the scale, so it has zero gain). The ideal DCG sorts the query's judged items by grade.
  **Ties in scores**: ``ties="average"`` (default) gives each position of a tied group the group's
  mean gain, i.e. the exact expectation over random orders of the ties (McSherry & Najork, 2008):
  deterministic, and neutral like tau-b (a constant scorer scores what a random order scores in
  expectation). ``ties="worst"`` puts tied items in their worst order (ascending grade), so a
  system cannot gain from ties; it punishes lexical scorers, whose many zero scores tie (on Home
  Depot it ranks BM25 below a random order on nDCG@10, 0.829 vs 0.844, against 0.861 with ``average``).
* **Grade accuracy** (discrete scales only: ``levels`` not ``None``): the share of items whose
  predicted grade rounded to the nearest level equals the judged grade; **MAE**: mean absolute
  error of the predicted grades. Only meaningful for systems that predict grades.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from encoders.relevance.pairs import GradeScale

TIES = ("average", "worst")


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b of ``x (n,)`` and ``y (n,)``; ``nan`` when either is constant or ``n < 2``.

    Equals ``scipy.stats.kendalltau(x, y).statistic`` (O(n²) memory: meant for one query's items).
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be equal-length 1-D arrays, got {a.shape} and {b.shape}")
    if a.size < 2:
        return float("nan")
    iu = np.triu_indices(a.size, k=1)
    sa = np.sign(a[:, None] - a[None, :])[iu]
    sb = np.sign(b[:, None] - b[None, :])[iu]
    denom = np.sqrt(float(np.abs(sa).sum()) * float(np.abs(sb).sum()))
    if denom == 0.0:
        return float("nan")
    return float(np.clip((sa * sb).sum() / denom, -1.0, 1.0))


def exp_gain(grades: np.ndarray, lowest: float) -> np.ndarray:
    """``2**(2·(grade − lowest)) − 1``, same shape (the lowest grade has gain 0)."""
    return 2.0 ** (2.0 * (np.asarray(grades, dtype=np.float64) - lowest)) - 1.0


def linear_gain(grades: np.ndarray, lowest: float) -> np.ndarray:
    """``grade − lowest``, same shape."""
    return np.asarray(grades, dtype=np.float64) - lowest


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def ranked_gains(scores: np.ndarray, gains: np.ndarray, ties: str = "average") -> np.ndarray:
    """The gains ``(n,)`` in the order of descending ``scores (n,)``, ties resolved per ``ties``.

    ``"average"``: every position of a tied group holds the group's mean gain (the expected gain
    under a random order of the ties). ``"worst"``: tied items ordered by ascending gain.
    """
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(gains, dtype=np.float64)
    if s.shape != g.shape or s.ndim != 1:
        raise ValueError(f"scores and gains must be equal-length 1-D arrays, got {s.shape} and {g.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN; a scorer must return a finite score for every pair")
    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    order = np.lexsort((g, -s))  # primary: score descending; secondary: gain ascending (worst)
    out = g[order]
    if ties == "average":
        ss = s[order]
        starts = np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])
        sums = np.add.reduceat(out, starts)
        sizes = np.diff(np.r_[starts, ss.size])
        out = np.repeat(sums / sizes, sizes)
    return out


def ndcg_from_scores(scores: np.ndarray, gains: np.ndarray, k: int = 10, ties: str = "average") -> float:
    """nDCG@k of ranking one query's judged items by ``scores (n,)``; ``gains (n,)`` already transformed.

    The ideal ranking sorts ``gains`` descending. ``nan`` when no item has a positive gain.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranked = ranked_gains(scores, gains, ties)[:k]
    ideal = np.sort(np.asarray(gains, dtype=np.float64))[::-1][:k]
    idcg = float(ideal @ _discounts(ideal.size))
    if idcg <= 0.0:
        return float("nan")
    return float(ranked @ _discounts(ranked.size)) / idcg


def grade_accuracy(predicted: np.ndarray, grades: np.ndarray, scale: GradeScale) -> float:
    """Share of ``predicted (n,)`` grades that round to the judged level; ``nan`` on a continuous scale."""
    if scale.levels is None:
        return float("nan")
    p = scale.nearest_level(np.asarray(predicted, dtype=np.float64))
    return float(np.mean(np.isclose(p, np.asarray(grades, dtype=np.float64))))


def mean_absolute_error(predicted: np.ndarray, grades: np.ndarray) -> float:
    """Mean ``|predicted − grade|`` over ``(n,)`` items."""
    return float(np.mean(np.abs(np.asarray(predicted, dtype=np.float64) - np.asarray(grades, dtype=np.float64))))


@dataclass(frozen=True)
class QueryMetrics:
    """The metrics of one system on one query (``grade_accuracy``/``mae`` are ``nan`` unless the
    system predicts grades; ``grade_accuracy`` also on a continuous scale)."""

    kendall_tau: float
    ndcg_exp: float
    ndcg_linear: float
    grade_accuracy: float = float("nan")
    mae: float = float("nan")


def query_metrics(
    scores: np.ndarray,
    grades: np.ndarray,
    scale: GradeScale,
    predicts_grades: bool = False,
    k: int = 10,
    ties: str = "average",
) -> QueryMetrics:
    """All metrics of one query: ``scores (n,)`` of a system, ``grades (n,)`` judged.

    A constant score list has tau ``0`` (it orders nothing) and, with ``ties="average"``, the
    expected nDCG of a random order; grades must take two or more values.
    """
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(grades, dtype=np.float64)
    if np.unique(g).size < 2:
        raise ValueError("a query needs two or more distinct grades to be measured")
    tau = kendall_tau_b(s, g)
    if np.isnan(tau):
        tau = 0.0
    acc = mae = float("nan")
    if predicts_grades:
        acc = grade_accuracy(s, g, scale)
        mae = mean_absolute_error(s, g)
    return QueryMetrics(
        kendall_tau=tau,
        ndcg_exp=ndcg_from_scores(s, exp_gain(g, scale.lowest), k, ties),
        ndcg_linear=ndcg_from_scores(s, linear_gain(g, scale.lowest), k, ties),
        grade_accuracy=acc,
        mae=mae,
    )
