"""Multiple-testing corrections (thin, typed wrapper over ``statsmodels.stats.multitest.multipletests``).

Defaults: **Holm** (family-wise error, valid under any dependence) for the family of decision
metrics of one treatment-vs-control comparison; **Benjamini–Hochberg** (false discovery rate) for
exploratory segment slices. ``nan`` p-values are left out of the family and stay ``nan``.

Adjusted intervals (:func:`adjusted_alphas`): each test's interval recomputed at a per-test level
``α_i`` chosen so that it excludes 0 exactly when the adjusted p-value is below ``α`` (for tests whose
own interval and p-value agree, i.e. p < a ⇔ the level-``a`` interval excludes 0):

* ``holm`` → ``holm-step``: sort the ``m`` p-values; a hypothesis Holm rejects at step ``r`` gets
  ``α/(m - r + 1)`` (its step's Bonferroni level); every hypothesis Holm does not reject gets
  ``α/(m - k + 1)`` with ``k`` the first step not rejected (Bonferroni over the ones left). These
  intervals agree with Holm's decisions but, unlike Bonferroni's, carry no guaranteed simultaneous
  coverage for the rejected ones (the narrower early-step intervals are not jointly valid);
* ``bonferroni`` → ``bonferroni``: ``α/m`` for all (simultaneous coverage ``≥ 1 - α``);
* ``fdr_bh`` → ``fcr-by``: Benjamini–Yekutieli false-coverage-rate intervals, ``R·α/m`` for all with
  ``R`` the number of BH rejections (``α/m`` when ``R = 0``): the selected intervals' FCR is ``≤ α``;
* ``none`` → the unadjusted ``α``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from statsmodels.stats.multitest import multipletests

from abtest.stats.errors import StatsInputError
from abtest.stats.result import TestResult

DECISION_CORRECTION = "holm"
SEGMENT_CORRECTION = "fdr_bh"
METHODS: tuple[str, ...] = ("holm", "fdr_bh", "bonferroni", "none")
CI_ADJUSTMENT: dict[str, str] = {"holm": "holm-step", "bonferroni": "bonferroni", "fdr_bh": "fcr-by", "none": "none"}


def adjust_pvalues(
    p_values: Sequence[float] | np.ndarray, method: str = DECISION_CORRECTION, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Adjusted p-values ``(m,)`` and reject flags ``(m,)`` for a family of ``m`` p-values.

    ``method`` is a ``multipletests`` name (``holm``, ``fdr_bh``, ``bonferroni``) or ``none``.
    """
    if method not in METHODS:
        raise StatsInputError(f"correction must be one of {METHODS}, got {method!r}")
    p = np.asarray(p_values, dtype=np.float64).ravel()
    adj = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if method == "none":
        adj[ok] = p[ok]
    elif ok.any():
        adj[ok] = multipletests(p[ok], alpha=alpha, method=method)[1]
    with np.errstate(invalid="ignore"):
        reject = np.where(ok, adj <= alpha, False)
    return adj, reject


def adjusted_alphas(
    p_values: Sequence[float] | np.ndarray, method: str = DECISION_CORRECTION, alpha: float = 0.05
) -> np.ndarray:
    """Per-test levels ``(m,)`` of the adjusted intervals (module doc); ``nan`` where the p-value is ``nan``.

    A test is rejected when its adjusted p-value is ``< alpha`` (as :attr:`TestResult.significant`).
    """
    adj, _ = adjust_pvalues(p_values, method, alpha)
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m == 0:
        return out
    rejected = adj[ok] < alpha
    if method == "none":
        out[ok] = alpha
    elif method == "bonferroni":
        out[ok] = alpha / m
    elif method == "fdr_bh":
        out[ok] = max(int(rejected.sum()), 1) * alpha / m
    else:  # holm: step-down levels
        order = np.argsort(p[ok], kind="stable")
        steps = np.arange(1, m + 1)
        level = alpha / (m - steps + 1)
        rej_sorted = rejected[order]
        k = int(np.argmin(rej_sorted)) if not rej_sorted.all() else m  # first step not rejected (0-based)
        level[k:] = alpha / (m - k) if k < m else level[k:]
        out[ok[order]] = level
    return out


def correct_results(results: Sequence[TestResult], method: str = DECISION_CORRECTION) -> list[TestResult]:
    """Copies of ``results`` with ``p_value_adjusted``, ``correction``, ``alpha_adjusted`` and
    ``ci_adjustment`` set (one family, one alpha)."""
    if not results:
        return []
    alphas = {r.alpha for r in results}
    if len(alphas) != 1:
        raise StatsInputError(f"a correction family must share one alpha, got {sorted(alphas)}")
    alpha = alphas.pop()
    p = [r.p_value for r in results]
    adj, _ = adjust_pvalues(p, method, alpha)
    levels = adjusted_alphas(p, method, alpha)
    return [
        r.with_(p_value_adjusted=float(a), correction=method,
                alpha_adjusted=None if np.isnan(lv) else float(lv), ci_adjustment=CI_ADJUSTMENT[method])
        for r, a, lv in zip(results, adj, levels, strict=True)
    ]


def adjusted_intervals(
    results: Sequence[TestResult], rerun: Callable[[TestResult, float], TestResult]
) -> list[TestResult]:
    """Fill ``abs_ci_adjusted``/``rel_ci_adjusted``: ``rerun(result, level)`` must return the same
    test at ``alpha=level`` (only its intervals are used). Results without a level are unchanged."""
    out = []
    for r in results:
        if r.alpha_adjusted is None:
            out.append(r)
            continue
        again = rerun(r, r.alpha_adjusted)
        out.append(r.with_(abs_ci_adjusted=again.abs_ci, rel_ci_adjusted=again.rel_ci))
    return out
