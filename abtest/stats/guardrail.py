"""Guardrail metrics: one-sided non-inferiority tests with a margin.

A guardrail *passes* when the data show the treatment is not worse than the control by more than
``margin``. With ``higher_is_better=True`` (e.g. long clicks) the hypotheses are

* absolute margin ``m``: ``H0: T - C <= -m`` vs ``H1: T - C > -m``;
* relative margin ``m`` (e.g. 0.01 = 1 %): ``H0: T/C <= 1 - m`` vs ``H1: T/C > 1 - m``, tested on the
  log scale (``log(T/C)`` with the delta-method standard error, as the relative CI);

and mirrored for ``higher_is_better=False`` (e.g. latency: ``T - C < m`` / ``T/C < 1 + m``). The
test is one-sided at level ``alpha``; equivalently the one-sided ``1 - alpha`` bound on the
(absolute or relative) delta lies beyond the margin. The estimate and its variance come from the
same test as the metric type (Welch, delta-method Welch, or unpooled z for proportions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from abtest.stats.distribution import p_value
from abtest.stats.errors import StatsInputError
from abtest.stats.estimates import pair_estimates
from abtest.stats.relative import log_ratio_se
from abtest.stats.result import TestResult
from abtest.stats.sufficient import MeanStats, ProportionStats, RatioStats
from abtest.stats.ttest import compare_estimates


@dataclass(frozen=True)
class GuardrailResult:
    """Non-inferiority outcome. ``bound`` is the one-sided confidence bound of the delta (absolute or
    relative, matching ``relative``) compared with ``-margin`` (or ``+margin``)."""

    metric: str
    passed: bool
    p_value: float
    margin: float
    relative: bool
    higher_is_better: bool
    bound: float
    test: TestResult

    def to_dict(self) -> dict:
        """JSON-ready dict (the underlying test nested under ``test``)."""
        return {
            "metric": self.metric,
            "passed": self.passed,
            "p_value": self.p_value,
            "margin": self.margin,
            "relative": self.relative,
            "higher_is_better": self.higher_is_better,
            "bound": self.bound,
            "test": self.test.to_dict(),
        }


def non_inferiority(
    control: MeanStats | RatioStats | ProportionStats,
    treatment: MeanStats | RatioStats | ProportionStats,
    *,
    margin: float,
    relative: bool = False,
    higher_is_better: bool = True,
    alpha: float = 0.05,
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
) -> GuardrailResult:
    """One-sided non-inferiority test of ``treatment`` vs ``control`` with a ``margin >= 0``."""
    if not (math.isfinite(margin) and margin >= 0):
        raise StatsInputError(f"margin must be finite and >= 0, got {margin}", metric)
    if relative and margin >= 1 and higher_is_better:
        raise StatsInputError(f"a relative margin must be < 1 when higher is better, got {margin}", metric)
    est = pair_estimates(control, treatment, metric, (control_name, treatment_name))
    c, vc, t, vt, df, method = (
        est.control,
        est.var_control,
        est.treatment,
        est.var_treatment,
        est.df,
        est.method,
    )
    alt = "greater" if higher_is_better else "less"
    sign = -1.0 if higher_is_better else 1.0
    null_abs = 0.0 if relative else sign * margin
    res = compare_estimates(
        c,
        vc,
        t,
        vt,
        df=df,
        n_control=control.n,
        n_treatment=treatment.n,
        method=f"non-inferiority-{method}",
        metric=metric,
        control=control_name,
        treatment=treatment_name,
        alpha=alpha,
        alternative=alt,
        null_delta=null_abs,
    )
    if not relative:
        bound = res.abs_ci[0] if higher_is_better else res.abs_ci[1]
        p = res.p_value
    else:
        bound = res.rel_ci[0] if higher_is_better else res.rel_ci[1]
        if c > 0 and t > 0:
            se_log = log_ratio_se(c, vc, t, vt)
            stat = (math.log(t / c) - math.log1p(sign * margin)) / se_log if se_log > 0 else math.nan
            p = float(p_value(stat, df, alt)) if se_log > 0 else math.nan
        else:
            stat, p = math.nan, math.nan
        res = res.with_(statistic=stat, p_value=p)
    passed = bool(math.isfinite(p) and p < alpha)
    return GuardrailResult(metric, passed, p, margin, relative, higher_is_better, float(bound), res)
