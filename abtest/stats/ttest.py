"""Two-sample tests of means on sufficient statistics, and the shared comparison core.

Conventions: sample variances with ``ddof=1``. The ``test`` keyword (the same on every test
function) picks the reference distribution and variance:

* ``"welch"`` (default) — unequal variances, ``v = var/n`` per arm, Welch–Satterthwaite
  ``df = (v_C + v_T)² / (v_C²/(n_C-1) + v_T²/(n_T-1))`` (scipy ``equal_var=False``, GrowthBook);
* ``"student"`` — pooled variance ``s² = ((n_C-1)s²_C + (n_T-1)s²_T) / (n_C+n_T-2)``, ``v = s²/n``,
  ``df = n_C + n_T - 2`` (scipy/R ``var.equal=TRUE``, tea-tasting ``equal_var=True``);
* ``"z"`` — unequal variances, normal reference (``df = inf``).

The p-value and the absolute interval come from ``(T - C) / sqrt(v_C + v_T)``; the relative
interval is computed separately (:mod:`abtest.stats.relative`) at the same level.
"""

from __future__ import annotations

import math

import numpy as np

from abtest.stats.distribution import check_alpha, check_alternative, critical_value, interval, p_value
from abtest.stats.errors import StatsInputError
from abtest.stats.relative import relative_interval
from abtest.stats.result import TestResult, join_notes
from abtest.stats.sufficient import MeanStats

MEAN_TESTS: tuple[str, ...] = ("welch", "student", "z")
METHOD_SUFFIX: dict[str, str] = {"welch": "welch-t", "student": "student-t", "z": "z"}


def check_test(test: str, allowed: tuple[str, ...] = MEAN_TESTS, metric: str = "") -> str:
    """Return ``test`` or raise :class:`StatsInputError` if it is not one of ``allowed``."""
    if test not in allowed:
        raise StatsInputError(f"test must be one of {allowed}, got {test!r}", metric)
    return test


def reference(
    var_c: float, n_c: int, var_t: float, n_t: int, test: str = "welch"
) -> tuple[float, float, float]:
    """``(v_C, v_T, df)``: sampling variances of the two means and the reference df under ``test``."""
    check_test(test)
    if test == "student":
        pooled = ((n_c - 1) * var_c + (n_t - 1) * var_t) / (n_c + n_t - 2)
        return pooled / n_c, pooled / n_t, float(n_c + n_t - 2)
    df = math.inf if test == "z" else welch_df(var_c, n_c, var_t, n_t)
    return var_c / n_c, var_t / n_t, float(df)


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
        rel_se=rel.se,
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
    method: str | None = None,
    test: str = "welch",
) -> TestResult:
    """Two-sample test of a per-user mean metric (e.g. impressions per user); Welch's t by default.

    ``test="welch"`` matches ``scipy.stats.ttest_ind_from_stats(..., equal_var=False)`` (same t, df
    and p), ``"student"`` the pooled-variance t (``equal_var=True``), ``"z"`` the normal test.
    ``alternative="greater"`` tests ``treatment > control``. ``method`` defaults to ``welch-t`` /
    ``student-t`` / ``z``.
    """
    check_test(test, metric=metric)
    control.validate(metric, control_name)
    treatment.validate(metric, treatment_name)
    vc, vt, df = reference(control.var, control.n, treatment.var, treatment.n, test)
    return compare_estimates(
        control.mean,
        vc,
        treatment.mean,
        vt,
        df=df,
        n_control=control.n,
        n_treatment=treatment.n,
        method=method or METHOD_SUFFIX[test],
        metric=metric,
        control=control_name,
        treatment=treatment_name,
        alpha=alpha,
        alternative=alternative,
        relative=relative,
    )
