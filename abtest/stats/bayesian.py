"""Bayesian A/B engine: a Gaussian model of the effect, as GrowthBook's default (``EffectBayesianABTest``).

The data summary is the same as the frequentist tests' (:func:`abtest.stats.estimates.pair_estimates`:
per-user means, delta-method linearised ratios, binomial ``p(1-p)`` proportions, or CUPED-adjusted
means): an estimate ``d̂`` of the effect and its sampling variance ``v``:

* ``effect="relative"`` (default): ``d̂ = T/C - 1``, ``v = v_T/C² + v_C·T²/C⁴`` (delta method);
* ``effect="absolute"``: ``d̂ = T - C``, ``v = v_C + v_T``.

The likelihood is ``d̂ ~ N(d, v)``. With an improper flat prior (``proper=False``, the default) the
posterior is ``N(d̂, v)``; with a proper prior ``N(m₀, s₀²)`` it is normal with precision
``1/s₀² + 1/v`` and mean ``(m₀/s₀² + d̂/v) / (1/s₀² + 1/v)``. The prior is stated on the **relative**
scale (GrowthBook's ``prior_type="relative"``: ``prior_mean``, ``prior_stddev``); for the absolute
effect it is rescaled by the control mean (``m₀·|C|``, ``s₀·|C|``). From the posterior ``N(μ, σ²)``:

* ``chance_to_win = P(d > 0)`` (``P(d < 0)`` when lower is better, ``inverse=True``);
* credible interval: the ``α/2`` and ``1 - α/2`` posterior quantiles;
* risk (expected loss, GrowthBook's ``risk``): ``risk_control = E[max(d, 0)]`` — what is lost on
  average by keeping control — and ``risk_treatment = E[max(-d, 0)]`` — by shipping the treatment
  (swapped when ``inverse``); ``E[max(X, 0)] = μΦ(μ/σ) + σφ(μ/σ)``.

Degenerate inputs do not raise: an arm without users, a zero control mean (relative effect) or zero
variance give GrowthBook's default output (chance 0.5, expected 0, interval ``(0, 0)``, risk 0) and a
``note``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from scipy import special

from abtest.stats.distribution import check_alpha
from abtest.stats.errors import StatsInputError
from abtest.stats.estimates import pair_estimates
from abtest.stats.relative import relative_se
from abtest.stats.sufficient import MeanStats, ProportionStats, RatioStats

EFFECTS: tuple[str, ...] = ("relative", "absolute")
ENGINES: tuple[str, ...] = ("frequentist", "bayesian", "both")


@dataclass(frozen=True)
class GaussianPrior:
    """Normal prior on the relative effect: ``mean``, ``stddev``; ignored unless ``proper``.

    Defaults are GrowthBook's metric defaults (``prior_mean=0``, ``prior_stddev=0.3``,
    ``proper=False``: an improper flat prior, the posterior is the likelihood).
    """

    mean: float = 0.0
    stddev: float = 0.3
    proper: bool = False

    def __post_init__(self) -> None:
        if not math.isfinite(self.mean):
            raise StatsInputError(f"prior mean must be finite, got {self.mean}")
        if self.proper and not (math.isfinite(self.stddev) and self.stddev > 0):
            raise StatsInputError(f"a proper prior needs a finite stddev > 0, got {self.stddev}")


@dataclass(frozen=True)
class BayesianResult:
    """Posterior summary of one treatment-vs-control comparison (see the module doc)."""

    metric: str
    control: str
    treatment: str
    effect: str
    expected: float
    ci: tuple[float, float]
    stddev: float
    chance_to_win: float
    risk_control: float
    risk_treatment: float
    alpha: float
    data_mean: float
    data_stddev: float
    n_control: int
    n_treatment: int
    inverse: bool = False
    prior: GaussianPrior = field(default_factory=GaussianPrior)
    method: str = "gaussian-effect"
    note: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def expected_positive_part(mu: float, sigma: float) -> float:
    """``E[max(X, 0)]`` for ``X ~ N(mu, sigma²)`` (``max(mu, 0)`` when ``sigma == 0``)."""
    if sigma <= 0:
        return max(mu, 0.0)
    z = mu / sigma
    return float(mu * special.ndtr(z) + sigma * math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi))


def posterior(data_mean: float, data_var: float, prior_mean: float, prior_var: float, proper: bool) -> tuple[float, float]:
    """``(mean, variance)`` of the normal posterior of the effect (conjugate normal–normal update)."""
    if not proper:
        return data_mean, data_var
    precision = 1.0 / prior_var + 1.0 / data_var
    return (prior_mean / prior_var + data_mean / data_var) / precision, 1.0 / precision


def _default(metric: str, names: tuple[str, str], effect: str, alpha: float, n: tuple[int, int], inverse: bool,
             prior: GaussianPrior, note: str) -> BayesianResult:
    return BayesianResult(metric, names[0], names[1], effect, 0.0, (0.0, 0.0), 0.0, 0.5, 0.0, 0.0, alpha,
                          math.nan, math.nan, n[0], n[1], inverse, prior, note=note)


def bayesian_test(
    control: MeanStats | RatioStats | ProportionStats,
    treatment: MeanStats | RatioStats | ProportionStats,
    *,
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
    effect: str = "relative",
    prior: GaussianPrior | None = None,
    alpha: float = 0.05,
    inverse: bool = False,
) -> BayesianResult:
    """Posterior of the treatment effect, chance to beat control, risk and credible interval.

    ``control``/``treatment`` are the same sufficient statistics as the frequentist tests take (pass
    CUPED-adjusted :class:`MeanStats` for a CUPED analysis). ``inverse=True`` when lower is better.
    """
    if effect not in EFFECTS:
        raise StatsInputError(f"effect must be one of {EFFECTS}, got {effect!r}", metric)
    check_alpha(alpha, metric)
    prior = prior or GaussianPrior()
    names = (control_name, treatment_name)
    n = (int(control.n), int(treatment.n))
    if min(n) == 0:
        return _default(metric, names, effect, alpha, n, inverse, prior, "an arm has no users")
    est = pair_estimates(control, treatment, metric, names)
    c, t, vc, vt = est.control, est.treatment, est.var_control, est.var_treatment
    if effect == "relative":
        if c == 0.0:
            return _default(metric, names, effect, alpha, n, inverse, prior, "control mean is 0: relative effect undefined")
        d_mean, d_sd = t / c - 1.0, relative_se(c, vc, t, vt)
        scale = 1.0
    else:
        d_mean, d_sd = t - c, math.sqrt(max(vc + vt, 0.0))
        scale = abs(c)
    if d_sd == 0.0 or not math.isfinite(d_sd):
        return _default(metric, names, effect, alpha, n, inverse, prior, "zero variance: no posterior")
    proper = prior.proper and scale > 0
    mu, var = posterior(d_mean, d_sd**2, prior.mean * scale, (prior.stddev * scale) ** 2, proper)
    sd = math.sqrt(var)
    p_pos = float(special.ndtr(mu / sd))
    q = float(special.ndtri(1.0 - alpha / 2.0))
    up, down = expected_positive_part(mu, sd), expected_positive_part(-mu, sd)
    return BayesianResult(
        metric=metric, control=control_name, treatment=treatment_name, effect=effect, expected=mu,
        ci=(mu - q * sd, mu + q * sd), stddev=sd, chance_to_win=1.0 - p_pos if inverse else p_pos,
        risk_control=down if inverse else up, risk_treatment=up if inverse else down, alpha=alpha,
        data_mean=d_mean, data_stddev=d_sd, n_control=n[0], n_treatment=n[1], inverse=inverse, prior=prior,
        method=f"gaussian-effect-{'proper' if proper else 'flat'}-prior",
    )  # fmt: skip


def bayes_rejects(chance_to_win: float, threshold: float = 0.95, two_sided: bool = True) -> bool:
    """The decision rule "ship / call it": ``chance_to_win > threshold`` (two-sided: also
    ``< 1 - threshold``, i.e. a winner or a loser declared)."""
    return bool(chance_to_win > threshold or (two_sided and chance_to_win < 1.0 - threshold))
