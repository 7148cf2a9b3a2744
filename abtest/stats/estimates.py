"""Reduce any pair of arm statistics to two estimates, their sampling variances and a df.

Used by the tests that work on "an estimate and its standard error" regardless of metric type
(guardrails, sequential intervals).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from abtest.stats.delta import linearize
from abtest.stats.errors import StatsInputError
from abtest.stats.sufficient import MeanStats, ProportionStats, RatioStats
from abtest.stats.ttest import welch_df


@dataclass(frozen=True)
class PairEstimates:
    """``control``/``treatment`` estimates, their sampling variances ``var_*`` (``var/n``), the
    reference ``df`` (``inf`` = z), sizes and the base method name."""

    control: float
    var_control: float
    treatment: float
    var_treatment: float
    df: float
    n_control: int
    n_treatment: int
    method: str


def pair_estimates(
    control: MeanStats | RatioStats | ProportionStats,
    treatment: MeanStats | RatioStats | ProportionStats,
    metric: str = "",
    names: tuple[str, str] = ("control", "treatment"),
) -> PairEstimates:
    """Estimates as the matching test uses them (Welch, delta-method Welch, unpooled z)."""
    if isinstance(control, ProportionStats) and isinstance(treatment, ProportionStats):
        control.validate(metric, names[0])
        treatment.validate(metric, names[1])
        return PairEstimates(
            control.p,
            control.var / control.n,
            treatment.p,
            treatment.var / treatment.n,
            math.inf,
            control.n,
            treatment.n,
            "unpooled-z",
        )
    method = "welch-t"
    if isinstance(control, RatioStats) and isinstance(treatment, RatioStats):
        control, treatment = linearize(control, metric, names[0]), linearize(treatment, metric, names[1])
        method = "delta-welch-t"
    if not (isinstance(control, MeanStats) and isinstance(treatment, MeanStats)):
        raise StatsInputError("control and treatment must be the same kind of statistics", metric)
    control.validate(metric, names[0])
    treatment.validate(metric, names[1])
    df = welch_df(control.var, control.n, treatment.var, treatment.n)
    return PairEstimates(
        control.mean,
        control.var_of_mean,
        treatment.mean,
        treatment.var_of_mean,
        df,
        control.n,
        treatment.n,
        method,
    )
