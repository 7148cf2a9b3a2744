"""SearchSage A/B toolkit: event logs → per-user sufficient statistics → tests → results.

The statistics live in :mod:`abtest.stats` (pure functions on sufficient statistics). The names
below are re-exported lazily, so ``import abtest`` stays cheap (scipy/statsmodels load on first use).
"""

from __future__ import annotations

from typing import Any

_STATS_EXPORTS = (
    "CovariateMeanStats",
    "CovariateRatioStats",
    "MeanStats",
    "ProportionStats",
    "RatioStats",
    "SRMResult",
    "StatsInputError",
    "TestResult",
    "correct_results",
    "cuped_ttest",
    "non_inferiority",
    "proportion_test",
    "ratio_ttest",
    "sequential_test",
    "srm_check",
    "welch_ttest",
)

__all__ = list(_STATS_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _STATS_EXPORTS:
        from abtest import stats

        return getattr(stats, name)
    raise AttributeError(f"module 'abtest' has no attribute {name!r}")
