"""Welch's two-sample t-test on sufficient statistics, and the shared comparison core.

Conventions: sample variances with ``ddof=1``; unequal variances (Welch); degrees of freedom by
Welch–Satterthwaite ``df = (v_C + v_T)² / (v_C²/(n_C-1) + v_T²/(n_T-1))`` with ``v = var/n``. The
p-value and the absolute interval come from ``t = (T - C) / sqrt(v_C + v_T)``; the relative
interval is computed separately (:mod:`abtest.stats.relative`) at the same level.
"""

from __future__ import annotations

import math

import numpy as np

from abtest.stats.distribution import check_alpha, check_alternative, critical_value, interval, p_value
from abtest.stats.relative import relative_interval
from abtest.stats.result import TestResult, join_notes
from abtest.stats.sufficient import MeanStats


def welch_df(
    var_c: float | np.ndarray, n_c: float | np.ndarray, var_t: float | np.ndarray, n_t: float | np.ndarray
):
    """Welch–Satterthwaite degrees of freedom from per-user variances and sizes (vectorised).

    ``nan`` when both variances are zero.
    """
    vc = np.asarray(var_c, dtype=np.float64) / n_c
    vt = np.asarray(var_t, dtype=np.float64) / n_t
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (vc + vt) ** 2 / (vc**2 / (np.asarray(n_c) - 1.0) + vt**2 / (np.asarray(n_t) - 1.0))
    return float(out) if np.ndim(out) == 0 else out


def compare_estimates(
    control_value: float,
    control_var_of_mean: float,
    treatment_value: float,
    treatment_var_of_mean: float,
    *,
    df: float,
    n_control: int,
    n_treatment: int,
    method: str,
    metric: str = "",
    control: str = "control",
    treatment: str = "treatment",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    relative: str = "log",
    cov: float = 0.0,
    null_delta: float = 0.0,
) -> TestResult:
    """Test ``treatment - control`` given two estimates and their sampling variances.

    The statistic is ``(Δ - null_delta) / se`` with ``se = sqrt(v_C + v_T - 2 cov)``, referred to a
    t distribution with ``df`` (``inf`` = normal). When ``se == 0`` the p-value and statistic are
    ``nan`` (no variation, no inference) and ``note`` says so; the interval collapses to ``Δ``.
    """
    check_alternative(alternative, metric)
    check_alpha(alpha, metric)
    delta = treatment_value - control_value
    se = math.sqrt(max(control_var_of_mean + treatment_var_of_mean - 2.0 * cov, 0.0))
    note = ""
    if se == 0.0:
        stat, p, q = math.nan, math.nan, 0.0
        note = "zero variance in both arms: p-value undefined"
    else:
        stat = (delta - null_delta) / se
        p = float(p_value(stat, df, alternative))
        q = float(critical_value(alpha, df, alternative))
    rel = relative_interval(
        control_value,
        control_var_of_mean,
        treatment_value,
        treatment_var_of_mean,
        cov=cov,
        alpha=alpha,
        alternative=alternative,
        df=df,
        method=relative,
    )
    note = join_notes(note, rel.note)
    return TestResult(
        metric=metric,
        control=control,
        treatment=treatment,
        control_value=float(control_value),
        treatment_value=float(treatment_value),
        abs_delta=float(delta),
        abs_ci=interval(delta, se, q, alternative),
        rel_delta=rel.rel_delta,
        rel_ci=rel.ci,
        p_value=p,
        alternative=alternative,
        alpha=alpha,
        method=method,
        n_control=int(n_control),
        n_treatment=int(n_treatment),
        df=float(df),
        se=se,
        statistic=float(stat),
        note=note,
    )


def welch_ttest(
    control: MeanStats,
    treatment: MeanStats,
    *,
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    relative: str = "log",
    method: str = "welch-t",
) -> TestResult:
    """Welch's t-test of a per-user mean metric (e.g. impressions per user).

    Matches ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)`` (same t, df and p).
    ``alternative="greater"`` tests ``treatment > control``.
    """
    control.validate(metric, control_name)
    treatment.validate(metric, treatment_name)
    df = welch_df(control.var, control.n, treatment.var, treatment.n)
    return compare_estimates(
        control.mean,
        control.var_of_mean,
        treatment.mean,
        treatment.var_of_mean,
        df=df,
        n_control=control.n,
        n_treatment=treatment.n,
        method=method,
        metric=metric,
        control=control_name,
        treatment=treatment_name,
        alpha=alpha,
        alternative=alternative,
        relative=relative,
    )
