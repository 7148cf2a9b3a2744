"""Ratio metrics randomised by user (``Σnum / Σden``) by the delta method.

The ratio ``R = N̄ / D̄`` of per-user means is linearised around the arm's means: each user
contributes ``(num - R·den) / D̄``, whose sample variance is

    var_lin = (var_num - 2 R cov_num_den + R² var_den) / D̄²      (ddof=1 moments)

and ``Var(R̂) ≈ var_lin / n``. This respects the correlation between a user's impressions (never
an impression-level binomial test, which understates the variance when users differ). The arms are
then compared with Welch's t on the linearised variances (Welch–Satterthwaite df); ``test="student"``
or ``"z"`` as for :func:`abtest.stats.ttest.welch_ttest`.
"""

from __future__ import annotations

from abtest.stats.result import TestResult
from abtest.stats.sufficient import MeanStats, RatioStats
from abtest.stats.ttest import METHOD_SUFFIX, check_test, welch_ttest


def linearized_variance(stats: RatioStats) -> float:
    """Per-user variance of the linearised ratio, ``var_lin`` above (``Var(R̂) = var_lin / n``)."""
    r = stats.mean_num / stats.mean_den
    v = (stats.var_num - 2.0 * r * stats.cov_num_den + r * r * stats.var_den) / stats.mean_den**2
    return max(v, 0.0)


def linearize(stats: RatioStats, metric: str = "", arm: str = "") -> MeanStats:
    """The ratio as a mean metric: ``MeanStats(n, ratio, var_lin)`` (validates first)."""
    stats.validate(metric, arm)
    return MeanStats(stats.n, stats.ratio, linearized_variance(stats))


def ratio_ttest(
    control: RatioStats,
    treatment: RatioStats,
    *,
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    relative: str = "log",
    test: str = "welch",
) -> TestResult:
    """Delta-method Welch test of a ratio metric (e.g. long-click rate = Σlong_clicks / Σimpressions).

    ``method`` is ``delta-welch-t`` (``delta-student-t``, ``delta-z`` for the other ``test`` values).
    """
    check_test(test, metric=metric)
    return welch_ttest(
        linearize(control, metric, control_name),
        linearize(treatment, metric, treatment_name),
        metric=metric,
        control_name=control_name,
        treatment_name=treatment_name,
        alpha=alpha,
        alternative=alternative,
        relative=relative,
        method=f"delta-{METHOD_SUFFIX[test]}",
        test=test,
    )
