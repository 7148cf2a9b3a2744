"""CUPED variance reduction with a pre-experiment covariate, for mean and ratio metrics.

Mean metrics: ``Ŷ_adj = Ȳ - θ (X̄ - X̄_pooled)`` with one ``θ = Cov(Y, X) / Var(X)`` estimated on the
**pooled sample** (both arms together, as one sample: the union's moments, ddof=1), so both arms
are adjusted by the same θ and the treatment effect is not absorbed into θ separately per arm.
The per-user variance of the adjusted metric in each arm is ``var_y - 2θ cov_xy + θ² var_x``
(that arm's own moments); the arms are then compared with Welch's t. The sampling noise of θ is
ignored (O(1/n), as in GrowthBook and Deng et al. 2013).

Ratio metrics (``Σnum / Σden`` with a pre-period ratio ``Σpre_num / Σpre_den``): both ratios are
linearised (delta method) — gradients ``(1/D̄, -R/D̄)`` and ``(1/P̄_D, -R_pre/P̄_D)`` applied to the
4×4 per-user covariance of ``(num, den, pre_num, pre_den)`` — and CUPED is applied to the
linearised metric: ``R_adj = R - θ (R_pre - R_pre_pooled)``.

Relative lift (``baseline``): ``"adjusted"`` (default) reports ``T_adj / C_adj - 1``; ``"unadjusted"``
(GrowthBook) reports ``(T_adj - C_adj) / C`` over the **unadjusted** control mean ``C``, with the
delta-method variance of ``D / C`` that accounts for the covariance of the adjusted difference
``D`` with ``C`` (``Cov(C, D) = -(var_y - θ cov_xy)/n_C`` in the control arm). Both are computed by
:func:`abtest.stats.relative.relative_interval` (``log``, ``delta`` or ``fieller``) on the pair
``(C, C + D)``.

Degenerate covariate: when the pooled covariate variance is 0, θ = 0 (no adjustment) and the
result's ``note`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from abtest.stats.errors import StatsInputError
from abtest.stats.relative import RelativeInterval, relative_interval
from abtest.stats.result import TestResult, join_notes
from abtest.stats.sufficient import CovariateMeanStats, CovariateRatioStats, MeanStats, _pool
from abtest.stats.ttest import METHOD_SUFFIX, check_test, reference, welch_ttest

CUPED_BASELINES: tuple[str, ...] = ("adjusted", "unadjusted")


@dataclass(frozen=True)
class CupedAdjustment:
    """CUPED-adjusted arms as mean metrics, ready for :func:`abtest.stats.ttest.welch_ttest`.

    ``variance_reduction`` is ``1 - Σ var_adj/n / Σ var_unadj/n`` over the two arms (the share of the
    variance of the difference removed). ``note`` is non-empty when θ was forced to 0.
    """

    theta: float
    control: MeanStats
    treatment: MeanStats
    control_unadjusted: MeanStats
    treatment_unadjusted: MeanStats
    variance_reduction: float
    note: str = ""


def _check(stats: CovariateMeanStats | CovariateRatioStats, metric: str, arm: str) -> None:
    if stats.n < 2:
        raise StatsInputError(f"need n >= 2 users, got n={stats.n}", metric, arm)
    _, mean, cov = stats.moments()
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))):
        raise StatsInputError("moments must be finite", metric, arm)
    if np.any(np.diag(cov) < 0):
        raise StatsInputError("variances must be >= 0", metric, arm)


def _resolve_theta(theta: float | None, cov_xy: float, var_x: float) -> tuple[float, str]:
    """``(θ, note)``: a given ``theta`` as is, else the pooled ``cov_xy / var_x`` (0 with a note when
    the covariate has no variance)."""
    if theta is not None:
        return theta, ""
    if var_x > 0:
        return float(cov_xy / var_x), ""
    return 0.0, "covariate has zero variance: CUPED not applied (theta=0)"


def _adjust(
    theta: float, y_mean: float, x_mean: float, x_pooled: float, vy: float, vx: float, cxy: float, n: int
):
    var_adj = max(vy - 2.0 * theta * cxy + theta * theta * vx, 0.0)
    return MeanStats(n, y_mean - theta * (x_mean - x_pooled), var_adj)


def _finish(theta: float, note: str, adj_c: MeanStats, adj_t: MeanStats, raw_c: MeanStats, raw_t: MeanStats):
    before = raw_c.var_of_mean + raw_t.var_of_mean
    after = adj_c.var_of_mean + adj_t.var_of_mean
    vr = 1.0 - after / before if before > 0 else 0.0
    return CupedAdjustment(theta, adj_c, adj_t, raw_c, raw_t, vr, note)


def cuped_adjust_means(
    control: CovariateMeanStats,
    treatment: CovariateMeanStats,
    *,
    metric: str = "",
    theta: float | None = None,
) -> CupedAdjustment:
    """CUPED for a per-user mean metric; ``theta=None`` estimates θ on the pooled sample."""
    _check(control, metric, "control")
    _check(treatment, metric, "treatment")
    _, mean, cov = _pool([control.moments(), treatment.moments()])
    theta, note = _resolve_theta(theta, cov[0, 1], cov[1, 1])
    x_pooled = float(mean[1])
    adj = [
        _adjust(theta, s.mean_y, s.mean_x, x_pooled, s.var_y, s.var_x, s.cov_xy, s.n)
        for s in (control, treatment)
    ]
    return _finish(theta, note, adj[0], adj[1], control.metric, treatment.metric)


def _ratio_linearization(mean: np.ndarray, cov: np.ndarray, metric: str, arm: str):
    """``(R, R_pre, var_y, var_x, cov_xy)`` of the linearised ratio and pre-ratio (per user)."""
    if mean[1] == 0 or mean[3] == 0:
        raise StatsInputError(
            "denominator (or pre-period denominator) mean is 0; ratio undefined", metric, arm
        )
    r, r_pre = mean[0] / mean[1], mean[2] / mean[3]
    gy = np.array([1.0 / mean[1], -r / mean[1], 0.0, 0.0])
    gx = np.array([0.0, 0.0, 1.0 / mean[3], -r_pre / mean[3]])
    return float(r), float(r_pre), float(gy @ cov @ gy), float(gx @ cov @ gx), float(gy @ cov @ gx)


def cuped_adjust_ratios(
    control: CovariateRatioStats,
    treatment: CovariateRatioStats,
    *,
    metric: str = "",
    theta: float | None = None,
) -> CupedAdjustment:
    """CUPED for a ratio metric on its linearisation; returns the adjusted ratios as mean metrics."""
    _check(control, metric, "control")
    _check(treatment, metric, "treatment")
    parts = [control.moments(), treatment.moments()]
    _, pmean, pcov = _pool(parts)
    _, rp_pooled, _, pvx, pcxy = _ratio_linearization(pmean, pcov, metric, "pooled")
    theta, note = _resolve_theta(theta, pcxy, pvx)
    adj, raw = [], []
    for (n, mean, cov), arm in zip(parts, ("control", "treatment"), strict=True):
        r, r_pre, vy, vx, cxy = _ratio_linearization(mean, cov, metric, arm)
        adj.append(_adjust(theta, r, r_pre, rp_pooled, vy, vx, cxy, n))
        raw.append(MeanStats(n, r, max(vy, 0.0)))
    return _finish(theta, note, adj[0], adj[1], raw[0], raw[1])


def cuped_ttest(
    control: CovariateMeanStats | CovariateRatioStats,
    treatment: CovariateMeanStats | CovariateRatioStats,
    *,
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    relative: str = "log",
    theta: float | None = None,
    test: str = "welch",
    baseline: str = "adjusted",
) -> TestResult:
    """Welch test on CUPED-adjusted arms (mean or ratio metric, picked by the input type).

    ``note`` records θ, the variance reduction and (when ``"unadjusted"``) the lift baseline;
    ``method`` is ``cuped-welch-t`` or ``cuped-delta-welch-t`` (``student-t``/``z`` per ``test``).
    ``baseline``: the denominator of the relative lift, ``"adjusted"`` or ``"unadjusted"`` control mean.
    """
    check_test(test, metric=metric)
    if baseline not in CUPED_BASELINES:
        raise StatsInputError(f"baseline must be one of {CUPED_BASELINES}, got {baseline!r}", metric)
    if isinstance(control, CovariateRatioStats) and isinstance(treatment, CovariateRatioStats):
        adj = cuped_adjust_ratios(control, treatment, metric=metric, theta=theta)
        method = f"cuped-delta-{METHOD_SUFFIX[test]}"
    elif isinstance(control, CovariateMeanStats) and isinstance(treatment, CovariateMeanStats):
        adj, method = cuped_adjust_means(control, treatment, metric=metric, theta=theta), f"cuped-{METHOD_SUFFIX[test]}"
    else:
        raise StatsInputError(
            "control and treatment must both be CovariateMeanStats or both CovariateRatioStats", metric
        )
    res = welch_ttest(
        adj.control,
        adj.treatment,
        metric=metric,
        control_name=control_name,
        treatment_name=treatment_name,
        alpha=alpha,
        alternative=alternative,
        relative=relative,
        method=method,
        test=test,
    )
    info = f"theta={adj.theta:.6g}, variance_reduction={adj.variance_reduction:.3f}"
    if baseline == "unadjusted":
        rel = unadjusted_relative(adj, control, alpha=alpha, alternative=alternative, df=res.df,
                                  method=relative, test=test)
        info += ", lift over the unadjusted control mean"
        res = res.with_(rel_delta=rel.rel_delta, rel_ci=rel.ci, rel_se=rel.se,
                        note=join_notes(*(n for n in res.note.split("; ") if "relative" not in n), rel.note))
    return res.with_(note=join_notes(adj.note, res.note, info))


def unadjusted_pair(
    adj: CupedAdjustment, control: CovariateMeanStats | CovariateRatioStats, test: str = "welch"
) -> tuple[float, float, float, float, float]:
    """``(C, v_C, C + D, v_{C+D}, Cov(C, C + D))`` with ``C`` the unadjusted control mean and ``D`` the
    CUPED-adjusted difference: the inputs of a relative interval over the unadjusted baseline."""
    c, vc = adj.control_unadjusted.mean, adj.control_unadjusted.var_of_mean
    v_adj_c, v_adj_t, _ = reference(adj.control.var, adj.control.n, adj.treatment.var, adj.treatment.n, test)
    d = adj.treatment.mean - adj.control.mean
    n, mean, cov = control.moments()
    if isinstance(control, CovariateRatioStats):
        _, _, vy, _, cxy = _ratio_linearization(mean, cov, "", "control")
    else:
        vy, cxy = float(cov[0, 0]), float(cov[0, 1])
    cov_cd = -(vy - adj.theta * cxy) / n
    return c, vc, c + d, vc + v_adj_c + v_adj_t + 2.0 * cov_cd, vc + cov_cd


def unadjusted_relative(
    adj: CupedAdjustment,
    control: CovariateMeanStats | CovariateRatioStats,
    *,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    df: float = math.inf,
    method: str = "log",
    test: str = "welch",
) -> RelativeInterval:
    """Relative lift ``D / C`` over the unadjusted control mean and its interval (see module doc)."""
    c, vc, t, vt, cov = unadjusted_pair(adj, control, test)
    return relative_interval(c, vc, t, vt, cov=cov, alpha=alpha, alternative=alternative, df=df, method=method)
