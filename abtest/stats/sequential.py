"""Always-valid (sequential) confidence intervals and p-values: the two-sided normal-mixture
confidence sequence of Howard, Ramdas, McAuliffe & Sekhon (2021), as used by GrowthBook and Eppo.

For a difference estimate ``Δ̂`` after ``N`` users (both arms) with standard error ``se`` the
per-user variance is ``s² = se² · N`` and the half-width is

    h(N) = sqrt(s²) · sqrt( 2 (Nρ² + 1) / (N² ρ²) · log( sqrt(Nρ² + 1) / α ) )

which holds simultaneously for every ``N`` with probability ``1 - α``: the experiment may be
peeked at any time and stopped as soon as the interval excludes 0. ``ρ`` is tuned so the boundary
is tightest at the planned sample size ``n_tune``:
``ρ² = (-2 log α + log(-2 log α + 1)) / n_tune``. ``n_tune`` must be **fixed before the first look**
and kept for every look: re-tuning it to the current sample size at each look makes the boundary a
constant multiple of ``se`` (a fixed z) and loses the guarantee (A/A, 40 looks: see
``bench/abstats.py``). The default, :data:`DEFAULT_N_TUNE` = 5,000 total users, is GrowthBook's
default ``sequential_tuning_parameter``; a wrong guess costs width, never validity. The always-valid p-value is the smallest α whose
interval excludes 0, ``min(1, sqrt(Nρ²+1) · exp(-Δ̂² N² ρ² / (2 s² (Nρ² + 1))))`` (ρ held at the
design α). The relative interval applies the same boundary to ``log(T/C)`` (``relative="log"``) or
to ``T/C - 1`` with its delta-method SE (``"delta"``, GrowthBook). CUPED inputs
(:class:`CovariateMeanStats`/:class:`CovariateRatioStats`) use the adjusted difference, with the lift
over the adjusted or unadjusted control mean (``baseline``).
Only two-sided intervals are provided. Intervals are wider than fixed-horizon ones at ``n_tune``
(the price of optional stopping).
"""

from __future__ import annotations

import math

import numpy as np

from abtest.stats.cuped import CUPED_BASELINES, cuped_adjust_means, cuped_adjust_ratios, unadjusted_pair
from abtest.stats.errors import StatsInputError
from abtest.stats.estimates import PairEstimates, pair_estimates
from abtest.stats.relative import log_ratio_se, relative_se
from abtest.stats.result import TestResult, join_notes
from abtest.stats.sufficient import (
    CovariateMeanStats,
    CovariateRatioStats,
    MeanStats,
    ProportionStats,
    RatioStats,
)

DEFAULT_N_TUNE = 5000.0
SEQUENTIAL_RELATIVE: tuple[str, ...] = ("log", "delta")


def mixture_rho(alpha: float, n_tune: float) -> float:
    """Mixture parameter ``ρ`` that makes the boundary tightest at ``n_tune`` total users."""
    if n_tune <= 0:
        raise StatsInputError(f"n_tune must be > 0, got {n_tune}")
    la = -2.0 * math.log(alpha)
    return math.sqrt((la + math.log(la + 1.0)) / n_tune)


def always_valid_halfwidth(se, n, alpha: float, rho: float):
    """Half-width ``h(N)`` of the always-valid interval (vectorised over ``se`` and ``n``)."""
    se = np.asarray(se, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    s2 = se**2 * n
    a = n * rho**2 + 1.0
    out = np.sqrt(s2) * np.sqrt(2.0 * a / (n**2 * rho**2) * np.log(np.sqrt(a) / alpha))
    return float(out) if out.ndim == 0 else out


def always_valid_p_value(delta, se, n, rho: float):
    """Always-valid p-value of ``H0: Δ = 0`` (vectorised)."""
    delta = np.asarray(delta, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    s2 = np.asarray(se, dtype=np.float64) ** 2 * n
    a = n * rho**2 + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.minimum(1.0, np.sqrt(a) * np.exp(-(delta**2) * n**2 * rho**2 / (2.0 * s2 * a)))
    return float(p) if p.ndim == 0 else p


def _cuped_pair(control, treatment, metric: str, baseline: str) -> tuple[PairEstimates, float, str]:
    """CUPED-adjusted estimates for the absolute test, plus the relative pair's covariance and method."""
    ratio = isinstance(control, CovariateRatioStats)
    adj = (cuped_adjust_ratios if ratio else cuped_adjust_means)(control, treatment, metric=metric)
    c, t = adj.control, adj.treatment
    est = PairEstimates(c.mean, c.var_of_mean, t.mean, t.var_of_mean, math.inf, c.n, t.n,
                        "cuped-delta-welch-t" if ratio else "cuped-welch-t")
    if baseline == "adjusted":
        return est, 0.0, est.method
    cu, vcu, tu, vtu, cov = unadjusted_pair(adj, control)
    return PairEstimates(cu, vcu, tu, vtu, math.inf, c.n, t.n, est.method), cov, est.method


def sequential_test(
    control: MeanStats | RatioStats | ProportionStats | CovariateMeanStats | CovariateRatioStats,
    treatment: MeanStats | RatioStats | ProportionStats | CovariateMeanStats | CovariateRatioStats,
    *,
    n_tune: float = DEFAULT_N_TUNE,
    alpha: float = 0.05,
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
    relative: str = "log",
    baseline: str = "adjusted",
) -> TestResult:
    """Always-valid two-sided test and intervals at the current sample size.

    ``n_tune``: planned total users (both arms) where the interval should be tightest, fixed for the
    whole experiment (default :data:`DEFAULT_N_TUNE`). ``method`` is ``sequential-<base method>``;
    ``df`` is ``inf`` (the boundary is normal-based); ``note`` records ``n_tune``.
    """
    if relative not in SEQUENTIAL_RELATIVE:
        raise StatsInputError(f"sequential relative must be one of {SEQUENTIAL_RELATIVE}, got {relative!r}", metric)
    if baseline not in CUPED_BASELINES:
        raise StatsInputError(f"baseline must be one of {CUPED_BASELINES}, got {baseline!r}", metric)
    rel_cov = 0.0
    if isinstance(control, CovariateMeanStats | CovariateRatioStats):
        est, rel_cov, _ = _cuped_pair(control, treatment, metric, baseline)
        delta = est.treatment - est.control
        se = math.sqrt(max(est.var_control + est.var_treatment - 2.0 * rel_cov, 0.0))
    else:
        est = pair_estimates(control, treatment, metric, (control_name, treatment_name))
        delta = est.treatment - est.control
        se = math.sqrt(est.var_control + est.var_treatment)
    n = est.n_control + est.n_treatment
    rho = mixture_rho(alpha, n_tune)
    c, t = est.control, est.treatment
    note = f"n_tune={n_tune:g}"
    if se == 0:
        hw, p = 0.0, math.nan
        note = join_notes("zero variance in both arms: p-value undefined", note)
    else:
        hw = always_valid_halfwidth(se, n, alpha, rho)
        p = always_valid_p_value(delta, se, n, rho)
    rel = t / c - 1.0 if c != 0 else math.nan
    se_rel = relative_se(c, est.var_control, t, est.var_treatment, rel_cov) if c != 0 else math.nan
    if relative == "delta" and c != 0:
        hw_rel = always_valid_halfwidth(se_rel, n, alpha, rho) if se_rel > 0 else 0.0
        rel_ci = (rel - hw_rel, rel + hw_rel)
    elif relative == "log" and c > 0 and t > 0:
        se_log = log_ratio_se(c, est.var_control, t, est.var_treatment, rel_cov)
        hw_log = always_valid_halfwidth(se_log, n, alpha, rho) if se_log > 0 else 0.0
        rel_ci = (math.exp(math.log(t / c) - hw_log) - 1.0, math.exp(math.log(t / c) + hw_log) - 1.0)
    else:
        rel_ci = (math.nan, math.nan)
        note = join_notes(note, "relative CI undefined: needs a non-zero (log: positive) control mean")
    return TestResult(
        metric=metric,
        control=control_name,
        treatment=treatment_name,
        control_value=float(c),
        treatment_value=float(t),
        abs_delta=float(delta),
        abs_ci=(delta - hw, delta + hw),
        rel_delta=float(rel),
        rel_ci=rel_ci,
        p_value=float(p),
        alternative="two-sided",
        alpha=alpha,
        method=f"sequential-{est.method}",
        n_control=est.n_control,
        n_treatment=est.n_treatment,
        df=math.inf,
        se=se,
        statistic=delta / se if se > 0 else math.nan,
        rel_se=se_rel,
        note=note,
    )
