"""Proportion metrics per user (share of users with at least one long click): two-sample z-test.

Conventions: binomial variance ``p(1-p)/n`` (ddof=0) per arm; normal reference (``df = inf``).
The confidence interval for ``p_T - p_C`` is the **unpooled** Wald interval. The test uses the
**unpooled** standard error too by default (``pooled=False``), so the p-value and the interval can
never disagree; ``pooled=True`` gives the classic pooled-variance z-test (= Pearson chi-square
without continuity correction, = ``statsmodels.stats.proportion.proportions_ztest``) for the
p-value only, while the interval stays unpooled.
"""

from __future__ import annotations

import math

from abtest.stats.distribution import p_value
from abtest.stats.result import TestResult
from abtest.stats.sufficient import ProportionStats
from abtest.stats.ttest import compare_estimates


def proportion_test(
    control: ProportionStats,
    treatment: ProportionStats,
    *,
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    relative: str = "log",
    pooled: bool = False,
) -> TestResult:
    """z-test and Wald interval for the difference of two proportions."""
    control.validate(metric, control_name)
    treatment.validate(metric, treatment_name)
    res = compare_estimates(
        control.p,
        control.var / control.n,
        treatment.p,
        treatment.var / treatment.n,
        df=math.inf,
        n_control=control.n,
        n_treatment=treatment.n,
        method="pooled-z" if pooled else "unpooled-z",
        metric=metric,
        control=control_name,
        treatment=treatment_name,
        alpha=alpha,
        alternative=alternative,
        relative=relative,
    )
    if not pooled:
        return res
    p_pool = (control.successes + treatment.successes) / (control.n + treatment.n)
    se = math.sqrt(p_pool * (1.0 - p_pool) * (1.0 / control.n + 1.0 / treatment.n))
    if se == 0.0:
        return res.with_(
            statistic=math.nan, p_value=math.nan, note=res.note or "no variation: p-value undefined"
        )
    stat = res.abs_delta / se
    note = "; ".join(n for n in res.note.split("; ") if n and not n.startswith("zero variance"))
    return res.with_(statistic=stat, p_value=float(p_value(stat, math.inf, alternative)), note=note)
