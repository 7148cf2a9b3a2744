"""Multiple-testing corrections (thin, typed wrapper over ``statsmodels.stats.multitest.multipletests``).

Defaults: **Holm** (family-wise error, valid under any dependence) for the family of decision
metrics of one treatment-vs-control comparison; **Benjamini–Hochberg** (false discovery rate) for
exploratory segment slices. ``nan`` p-values are left out of the family and stay ``nan``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from statsmodels.stats.multitest import multipletests

from abtest.stats.errors import StatsInputError
from abtest.stats.result import TestResult

DECISION_CORRECTION = "holm"
SEGMENT_CORRECTION = "fdr_bh"
METHODS: tuple[str, ...] = ("holm", "fdr_bh", "bonferroni", "none")


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


def correct_results(results: Sequence[TestResult], method: str = DECISION_CORRECTION) -> list[TestResult]:
    """Copies of ``results`` with ``p_value_adjusted`` and ``correction`` set (one family, one alpha)."""
    if not results:
        return []
    alphas = {r.alpha for r in results}
    if len(alphas) != 1:
        raise StatsInputError(f"a correction family must share one alpha, got {sorted(alphas)}")
    adj, _ = adjust_pvalues([r.p_value for r in results], method, alphas.pop())
    return [r.with_(p_value_adjusted=float(a), correction=method) for r, a in zip(results, adj, strict=True)]
