"""Pure A/B statistics on sufficient statistics (no I/O, no raw events). See ``docs/statistics.md``."""

from __future__ import annotations

from abtest.stats.bayesian import BayesianResult, GaussianPrior, bayes_rejects, bayesian_test
from abtest.stats.capping import ColumnCap, cap_column, cap_ratio, cap_value
from abtest.stats.cuped import CupedAdjustment, cuped_adjust_means, cuped_adjust_ratios, cuped_ttest
from abtest.stats.delta import linearize, linearized_variance, ratio_ttest
from abtest.stats.errors import StatsInputError
from abtest.stats.guardrail import GuardrailResult, non_inferiority
from abtest.stats.multiple import (
    DECISION_CORRECTION,
    SEGMENT_CORRECTION,
    adjust_pvalues,
    adjusted_alphas,
    adjusted_intervals,
    correct_results,
)
from abtest.stats.power import mde, metric_mde, metric_power, metric_sample_size, power, sample_size
from abtest.stats.proportion import proportion_test
from abtest.stats.relative import RelativeInterval, relative_interval
from abtest.stats.result import ALTERNATIVES, TestResult
from abtest.stats.sequential import sequential_test
from abtest.stats.srm import SRM_THRESHOLD, SRMResult, srm_check
from abtest.stats.sufficient import (
    CovariateMeanStats,
    CovariateRatioStats,
    MeanStats,
    ProportionStats,
    RatioStats,
)
from abtest.stats.ttest import compare_estimates, welch_df, welch_ttest

__all__ = [
    "ALTERNATIVES",
    "DECISION_CORRECTION",
    "SEGMENT_CORRECTION",
    "SRM_THRESHOLD",
    "BayesianResult",
    "ColumnCap",
    "CovariateMeanStats",
    "CovariateRatioStats",
    "CupedAdjustment",
    "GaussianPrior",
    "GuardrailResult",
    "MeanStats",
    "ProportionStats",
    "RatioStats",
    "RelativeInterval",
    "SRMResult",
    "StatsInputError",
    "TestResult",
    "adjust_pvalues",
    "adjusted_alphas",
    "adjusted_intervals",
    "bayes_rejects",
    "bayesian_test",
    "cap_column",
    "cap_ratio",
    "cap_value",
    "compare_estimates",
    "correct_results",
    "cuped_adjust_means",
    "cuped_adjust_ratios",
    "cuped_ttest",
    "linearize",
    "linearized_variance",
    "mde",
    "metric_mde",
    "metric_power",
    "metric_sample_size",
    "non_inferiority",
    "power",
    "proportion_test",
    "ratio_ttest",
    "relative_interval",
    "sample_size",
    "sequential_test",
    "srm_check",
    "welch_df",
    "welch_ttest",
]
