"""Power, minimum detectable effect (MDE) and sample size for two-arm tests.

The standardised core follows ``statsmodels.stats.power`` exactly: effect size ``d = Δ / σ``
(σ = per-user standard deviation), ``nobs2 = ratio · nobs1``, effective ``n = 1 / (1/nobs1 + 1/nobs2)``;
``test="t"`` uses the non-central t with ``df = nobs1 + nobs2 - 2`` (= ``TTestIndPower``),
``test="z"`` the normal (= ``NormalIndPower``). ``alternative="greater"``/``"less"`` correspond to
statsmodels' ``"larger"``/``"smaller"`` (one-sided; the effect should have that sign).

The metric-level helpers take an arm's sufficient statistics as the baseline: σ² is the per-user
variance (``var`` of a mean metric, the linearised variance of a ratio metric, ``p(1-p)`` of a
proportion), assumed equal in both arms. ``power`` is vectorised over numpy arrays; the solvers
(``sample_size``, ``mde``) use ``scipy.optimize.brentq`` per element.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize
from scipy import stats as sps

from abtest.stats.delta import linearized_variance
from abtest.stats.distribution import check_alternative
from abtest.stats.errors import StatsInputError
from abtest.stats.sufficient import MeanStats, ProportionStats, RatioStats

TESTS: tuple[str, ...] = ("t", "z")


def power(
    effect_size: float | np.ndarray,
    nobs1: float | np.ndarray,
    *,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    test: str = "t",
) -> float | np.ndarray:
    """Probability of rejecting H0 for standardised ``effect_size`` with ``nobs1`` control users."""
    check_alternative(alternative)
    if test not in TESTS:
        raise StatsInputError(f"test must be one of {TESTS}, got {test!r}")
    d = np.asarray(effect_size, dtype=np.float64)
    n1 = np.asarray(nobs1, dtype=np.float64)
    n2 = n1 * ratio
    nc = d * np.sqrt(1.0 / (1.0 / n1 + 1.0 / n2))
    a = _tail_alpha(alpha, alternative)
    out = np.zeros(np.broadcast(d, n1).shape)
    if test == "t":
        df = n1 + n2 - 2.0
        if alternative in ("two-sided", "greater"):
            out = out + sps.nct.sf(sps.t.isf(a, df), df, nc)
        if alternative in ("two-sided", "less"):
            out = out + sps.nct.cdf(sps.t.ppf(a, df), df, nc)
    else:
        crit = sps.norm.isf(a)
        if alternative in ("two-sided", "greater"):
            out = out + sps.norm.sf(crit - nc)
        if alternative in ("two-sided", "less"):
            out = out + sps.norm.cdf(-crit - nc)
    return float(out) if out.ndim == 0 else out


def _tail_alpha(alpha: float, alternative: str) -> float:
    """Level of each rejection tail: ``alpha / 2`` two-sided, ``alpha`` one-sided."""
    return alpha / 2.0 if alternative == "two-sided" else alpha


def _z_sum(alpha: float, power_target: float, alternative: str) -> float:
    """``z_{1-a} + z_{power}``: the standardised distance a normal test needs (``a`` per tail)."""
    return float(sps.norm.isf(_tail_alpha(alpha, alternative)) + sps.norm.isf(1.0 - power_target))


def _check_target(target: float) -> None:
    if not 0.0 < target < 1.0:
        raise StatsInputError(f"power must be in (0, 1), got {target}")


def sample_size(
    effect_size: float,
    *,
    power_target: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    test: str = "t",
) -> float:
    """Control-arm users ``nobs1`` (fractional; round up) to reach ``power_target`` for ``effect_size``."""
    _check_target(power_target)
    if (
        effect_size == 0
        or (alternative == "greater" and effect_size < 0)
        or (alternative == "less" and effect_size > 0)
    ):
        raise StatsInputError(
            f"effect size {effect_size} cannot be detected with alternative={alternative!r}"
        )

    def f(n: float) -> float:
        return (
            power(effect_size, n, ratio=ratio, alpha=alpha, alternative=alternative, test=test) - power_target
        )

    n_z = _z_sample_size(abs(effect_size), power_target, ratio, alpha, alternative)
    floor = 3.0 / (1.0 + ratio) if test == "t" else 1e-9  # t needs df = n1 + n2 - 2 >= 1
    lo, hi = max(floor, 0.5 * n_z), 2.0 * n_z + 10.0
    if not f(lo) < 0:
        lo = floor
        if not f(lo) < 0:
            return lo
    while f(hi) < 0:
        hi *= 2.0
    return float(optimize.brentq(f, lo, hi, xtol=1e-10, rtol=1e-12))


def _z_sample_size(d: float, power_target: float, ratio: float, alpha: float, alternative: str) -> float:
    """Normal-approximation ``nobs1`` (used to bracket the exact solvers)."""
    z = _z_sum(alpha, power_target, alternative)
    return float((z / d) ** 2 * (1.0 + 1.0 / ratio))


def mde(
    nobs1: float,
    *,
    power_target: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    test: str = "t",
) -> float:
    """Smallest standardised effect detectable with ``power_target`` (negative for ``"less"``)."""
    _check_target(power_target)
    sign = -1.0 if alternative == "less" else 1.0

    def f(d: float) -> float:
        return (
            power(sign * d, nobs1, ratio=ratio, alpha=alpha, alternative=alternative, test=test)
            - power_target
        )

    d_z = _z_sum(alpha, power_target, alternative) * math.sqrt(1.0 / nobs1 + 1.0 / (ratio * nobs1))
    hi = 2.0 * d_z
    while f(hi) < 0:
        hi *= 2.0
    return sign * float(optimize.brentq(f, 1e-12, hi, xtol=1e-14, rtol=1e-12))


def per_user_sd(stats: MeanStats | RatioStats | ProportionStats) -> float:
    """Per-user standard deviation of a metric (linearised for ratios, ``sqrt(p(1-p))`` for proportions)."""
    if isinstance(stats, RatioStats):
        stats.validate()
        return math.sqrt(linearized_variance(stats))
    if isinstance(stats, ProportionStats):
        stats.validate()
    return math.sqrt(stats.var)


def _baseline(stats: MeanStats | RatioStats | ProportionStats) -> float:
    if isinstance(stats, RatioStats):
        return stats.ratio
    if isinstance(stats, ProportionStats):
        return stats.p
    return stats.mean


def _test_for(baseline: MeanStats | RatioStats | ProportionStats) -> str:
    """The standardised test a metric uses: ``"z"`` for proportions, ``"t"`` for mean/ratio metrics."""
    return "z" if isinstance(baseline, ProportionStats) else "t"


def metric_mde(
    baseline: MeanStats | RatioStats | ProportionStats,
    nobs1: float,
    *,
    power_target: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    relative: bool = False,
) -> float:
    """MDE of a metric in its own units (``relative=True``: as a share of the baseline value).

    Proportions use the z test, mean and ratio metrics the t test.
    """
    test = _test_for(baseline)
    d = mde(nobs1, power_target=power_target, ratio=ratio, alpha=alpha, alternative=alternative, test=test)
    abs_mde = d * per_user_sd(baseline)
    return abs_mde / _baseline(baseline) if relative else abs_mde


def metric_sample_size(
    baseline: MeanStats | RatioStats | ProportionStats,
    delta: float,
    *,
    power_target: float = 0.8,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    relative: bool = False,
) -> int:
    """Control-arm users needed to detect ``delta`` (absolute, or relative to the baseline), rounded up."""
    abs_delta = delta * _baseline(baseline) if relative else delta
    sd = per_user_sd(baseline)
    if sd == 0:
        raise StatsInputError("baseline has zero variance: any effect is detectable, sample size undefined")
    test = _test_for(baseline)
    n = sample_size(
        abs_delta / sd,
        power_target=power_target,
        ratio=ratio,
        alpha=alpha,
        alternative=alternative,
        test=test,
    )
    return math.ceil(n - 1e-9)


def metric_power(
    baseline: MeanStats | RatioStats | ProportionStats,
    delta: float,
    nobs1: float,
    *,
    ratio: float = 1.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    relative: bool = False,
) -> float:
    """Power to detect ``delta`` (absolute, or relative to the baseline) with ``nobs1`` control users."""
    abs_delta = delta * _baseline(baseline) if relative else delta
    test = _test_for(baseline)
    return float(
        power(
            abs_delta / per_user_sd(baseline),
            nobs1,
            ratio=ratio,
            alpha=alpha,
            alternative=alternative,
            test=test,
        )
    )
