"""Relevance of what each arm served (per-query nDCG@K and P@k against human judgments) and the
paired comparison of two arms over the same queries.

Per-query metrics reuse :mod:`encoders.eval.ranking_metrics` and therefore its conventions:
an **unjudged served result counts as grade 0** (not relevant), nDCG's ideal ranking uses all judged
items of the query, P@k counts missing positions as not relevant.

The comparison is **paired by query**: a query enters only if both arms served it and it has at
least one judgment; for nDCG, queries whose nDCG is undefined (no judged item with positive gain)
are dropped too. The paired t-test (df = Q - 1) gives the p-value in every method; ``method``
chooses the interval: ``"t"`` (paired t), ``"bootstrap"`` (percentile interval of a paired
bootstrap over queries, seeded), or ``"permutation"`` (t interval, p-value from a seeded random
sign-flip permutation test instead of the t distribution).

:func:`graded_query_metrics` scores served lists against any source of grades (human judgments or
model labels) for a fixed list of queries, flagging the queries whose shown results are all graded;
:mod:`abtest.relevance_ppi` builds the prediction-powered estimates on it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from abtest.stats.distribution import check_alpha, check_alternative
from abtest.stats.errors import StatsInputError
from abtest.stats.result import TestResult
from abtest.stats.ttest import compare_estimates
from encoders.eval.ranking_metrics import grades_for, ndcg_at_k, precision_at_k

PAIRED_METHODS: tuple[str, ...] = ("t", "bootstrap", "permutation")


@dataclass(frozen=True)
class QueryRelevance:
    """Per-query relevance of one arm: ``queries (Q,)``, ``ndcg (Q,)`` (nan = undefined), ``precision (Q,)``."""

    queries: tuple[str, ...]
    ndcg: np.ndarray
    precision: np.ndarray
    k: int
    p_k: int

    def as_dict(self, which: str) -> dict[str, float]:
        """``{query: value}`` for ``which`` in ``{"ndcg", "precision"}``."""
        return dict(zip(self.queries, getattr(self, which).tolist(), strict=True))


def query_relevance(
    served: Mapping[str, Sequence[str]],
    judgments: Mapping[str, Mapping[str, float]],
    *,
    k: int = 10,
    p_k: int = 8,
    relevant_grade: float = 1.0,
    min_grade: float = 0.0,
) -> QueryRelevance:
    """nDCG@``k`` and P@``p_k`` for every served query that has at least one judgment.

    ``served``: query → result ids in rank order; ``judgments``: query → {result id: grade}.
    ``min_grade``: the lowest grade of the scale (zero gain); ``relevant_grade``: P@k threshold.
    """
    queries = tuple(q for q in served if judgments.get(q))
    ndcg = np.empty(len(queries))
    prec = np.empty(len(queries))
    for i, q in enumerate(queries):
        judged = judgments[q]
        grades = grades_for(list(served[q]), judged)
        ndcg[i] = ndcg_at_k(grades, list(judged.values()), k=k, min_grade=min_grade)
        prec[i] = precision_at_k(grades, k=p_k, relevant_grade=relevant_grade)
    return QueryRelevance(queries, ndcg, prec, k, p_k)


def align(
    control: Mapping[str, float], treatment: Mapping[str, float]
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Queries present in both arms with finite values in both, and the two value arrays ``(Q,)``."""
    qs = [q for q in control if q in treatment and math.isfinite(control[q]) and math.isfinite(treatment[q])]
    return qs, np.array([control[q] for q in qs], dtype=np.float64), np.array([treatment[q] for q in qs])


def _bootstrap_means(c: np.ndarray, t: np.ndarray, n_resamples: int, rng: np.random.Generator):
    """Resampled means of ``c`` and ``t`` over the same query indices, each ``(n_resamples,)``."""
    q = c.size
    mc, mt = np.empty(n_resamples), np.empty(n_resamples)
    step = max(1, 2_000_000 // max(q, 1))
    for s in range(0, n_resamples, step):
        idx = rng.integers(0, q, size=(min(step, n_resamples - s), q))
        mc[s : s + idx.shape[0]] = c[idx].mean(axis=1)
        mt[s : s + idx.shape[0]] = t[idx].mean(axis=1)
    return mc, mt


def _sign_flip_p(d: np.ndarray, n_resamples: int, alternative: str, rng: np.random.Generator) -> float:
    obs = d.mean()
    hits = 0
    step = max(1, 2_000_000 // max(d.size, 1))
    for s in range(0, n_resamples, step):
        signs = rng.integers(0, 2, size=(min(step, n_resamples - s), d.size)) * 2 - 1
        perm = (signs * d).mean(axis=1)
        if alternative == "two-sided":
            hits += int(np.sum(np.abs(perm) >= abs(obs) - 1e-15))
        elif alternative == "greater":
            hits += int(np.sum(perm >= obs - 1e-15))
        else:
            hits += int(np.sum(perm <= obs + 1e-15))
    return (hits + 1) / (n_resamples + 1)


def paired_test(
    control: np.ndarray,
    treatment: np.ndarray,
    *,
    method: str = "t",
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> TestResult:
    """Paired comparison of per-query values ``control (Q,)`` and ``treatment (Q,)`` (same query order).

    Pairs with a nan in either arm are dropped (counted in ``note``). ``n_control = n_treatment = Q``.
    Raises :class:`StatsInputError` with fewer than 2 usable queries.
    """
    if method not in PAIRED_METHODS:
        raise StatsInputError(f"paired method must be one of {PAIRED_METHODS}, got {method!r}", metric)
    check_alternative(alternative, metric)
    check_alpha(alpha, metric)
    c = np.asarray(control, dtype=np.float64).ravel()
    t = np.asarray(treatment, dtype=np.float64).ravel()
    if c.shape != t.shape:
        raise StatsInputError(f"paired arrays differ in length: {c.size} vs {t.size}", metric)
    ok = np.isfinite(c) & np.isfinite(t)
    c, t = c[ok], t[ok]
    q = c.size
    if q < 2:
        raise StatsInputError(f"need >= 2 queries judged in both arms, got {q}", metric)
    cov = np.cov(c, t, ddof=1)
    res = compare_estimates(
        float(c.mean()),
        cov[0, 0] / q,
        float(t.mean()),
        cov[1, 1] / q,
        df=q - 1,
        n_control=q,
        n_treatment=q,
        method=f"paired-{method}",
        metric=metric,
        control=control_name,
        treatment=treatment_name,
        alpha=alpha,
        alternative=alternative,
        cov=cov[0, 1] / q,
    )
    notes = [res.note] if res.note else []
    if (~ok).any():
        notes.append(f"{int((~ok).sum())} queries dropped (undefined in an arm)")
    rng = np.random.default_rng(seed)
    if method == "bootstrap":
        mc, mt = _bootstrap_means(c, t, n_resamples, rng)
        lo_q, hi_q = (alpha / 2, 1 - alpha / 2) if alternative == "two-sided" else (alpha, 1 - alpha)
        d_lo, d_hi = np.quantile(mt - mc, [lo_q, hi_q])
        with np.errstate(divide="ignore", invalid="ignore"):
            r_lo, r_hi = np.quantile(mt / mc - 1.0, [lo_q, hi_q])
        abs_ci = (
            float(d_lo) if alternative != "less" else -math.inf,
            float(d_hi) if alternative != "greater" else math.inf,
        )
        rel_ci = (
            float(r_lo) if alternative != "less" else -1.0,
            float(r_hi) if alternative != "greater" else math.inf,
        )
        res = res.with_(abs_ci=abs_ci, rel_ci=rel_ci)
        notes.append(f"bootstrap percentile interval, {n_resamples} resamples, seed {seed}")
    elif method == "permutation":
        p = _sign_flip_p(t - c, n_resamples, alternative, rng)
        res = res.with_(p_value=p)
        notes.append(f"sign-flip permutation p-value, {n_resamples} resamples, seed {seed}")
    return res.with_(note="; ".join(notes))


def compare_relevance(
    control: QueryRelevance,
    treatment: QueryRelevance,
    *,
    method: str = "t",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    control_name: str = "control",
    treatment_name: str = "treatment",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> list[TestResult]:
    """Paired tests of nDCG@k and P@p_k over the queries both arms served (two results)."""
    out = []
    for which, name in (("ndcg", f"ndcg@{control.k}"), ("precision", f"p@{control.p_k}")):
        _qs, c, t = align(control.as_dict(which), treatment.as_dict(which))
        out.append(
            paired_test(
                c,
                t,
                method=method,
                metric=name,
                control_name=control_name,
                treatment_name=treatment_name,
                alpha=alpha,
                alternative=alternative,
                n_resamples=n_resamples,
                seed=seed,
            )
        )
    return out


@dataclass(frozen=True)
class GradedMetrics:
    """Per-query metrics of one arm from one source of grades (human judgments or model labels).

    ``ndcg (Q,)``, ``precision (Q,)``: ``nan`` where the source has no grade at all for the query; an
    undefined nDCG (no graded item with positive gain) is **0** here (nothing relevant to find), so the
    estimand is defined for every query. ``complete (Q,)``: every result the arm served in the first
    ``depth`` positions has a grade in the source; ``missing (Q,)``: how many of them lack one.
    """

    queries: tuple[str, ...]
    ndcg: np.ndarray
    precision: np.ndarray
    complete: np.ndarray
    missing: np.ndarray


def graded_query_metrics(
    served: Mapping[str, Sequence[str]],
    grades: Mapping[str, Mapping[str, float]],
    queries: Sequence[str],
    *,
    k: int = 10,
    p_k: int = 8,
    relevant_grade: float = 1.0,
    min_grade: float = 0.0,
) -> GradedMetrics:
    """nDCG@``k`` / P@``p_k`` of ``served[q]`` for each of ``queries`` scored with ``grades`` (``(Q,)`` arrays).

    Same gain, discount and ideal (every graded item of the query) as :func:`query_relevance`; results
    without a grade count as the lowest grade. Queries the arm did not serve score over an empty list.
    """
    depth = max(k, p_k)
    n = len(queries)
    ndcg, prec = np.full(n, np.nan), np.full(n, np.nan)
    complete, missing = np.zeros(n, dtype=bool), np.zeros(n, dtype=np.int64)
    for i, q in enumerate(queries):
        ranked = list(served.get(q, []))
        graded = grades.get(q) or {}
        missing[i] = sum(p not in graded for p in ranked[:depth])
        complete[i] = bool(graded) and missing[i] == 0
        if not graded:
            continue
        g = grades_for(ranked, graded)
        value = ndcg_at_k(g, list(graded.values()), k=k, min_grade=min_grade)
        ndcg[i] = 0.0 if math.isnan(value) else value
        prec[i] = precision_at_k(g, k=p_k, relevant_grade=relevant_grade)
    return GradedMetrics(tuple(queries), ndcg, prec, complete, missing)
