"""Power / MDE calculator over an experiment's control arm (wraps :mod:`abtest.stats.power`).

The baseline of a metric is the control arm's per-user sufficient statistics from ``users.parquet``
(segment ``all``): mean metrics use the per-user column, ratio metrics Σ numerator / Σ denominator
(linearised variance), proportion metrics the share of users with ``numerator > 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from abtest.metrics import CATALOGUE, Metric
from abtest.stats.power import metric_mde, metric_power, metric_sample_size
from abtest.stats.sufficient import MeanStats, ProportionStats, RatioStats

Baseline = MeanStats | RatioStats | ProportionStats


def baseline_stats(users: pd.DataFrame, metric: Metric) -> Baseline:
    """Sufficient statistics of ``metric`` over the rows of ``users`` (one row per user)."""
    num = users[metric.numerator].to_numpy(dtype=np.float64)
    if metric.kind == "ratio":
        return RatioStats.from_arrays(num, users[str(metric.denominator)].to_numpy(dtype=np.float64))
    if metric.kind == "proportion":
        return ProportionStats.from_array((num > 0).astype(np.float64))
    return MeanStats.from_array(num)


def baseline_value(stats: Baseline) -> float:
    """The baseline metric value (mean, ratio or share)."""
    if isinstance(stats, RatioStats):
        return float(stats.ratio)
    if isinstance(stats, ProportionStats):
        return float(stats.p)
    return float(stats.mean)


@dataclass
class PowerPlan:
    """Answers for one metric: MDE at ``users_per_arm``, users needed and power for ``target_lift``.

    ``mde_relative`` and ``target_lift`` are fractions of the baseline (0.02 = 2 %); ``users_needed``
    is per arm (equal split).
    """

    metric: str
    baseline: float
    users_per_arm: int
    alpha: float
    power_target: float
    mde_relative: float
    target_lift: float
    users_needed: int
    power_at_users: float


def plan(stats: Baseline, metric: str, users_per_arm: int, target_lift: float, alpha: float = 0.05,
         power_target: float = 0.8) -> PowerPlan:
    """Two-sided, equal-split power analysis for ``metric`` (raises ``StatsInputError`` on bad inputs)."""
    kw = {"alpha": alpha, "relative": True}
    return PowerPlan(
        metric=metric, baseline=baseline_value(stats), users_per_arm=int(users_per_arm), alpha=alpha,
        power_target=power_target,
        mde_relative=float(metric_mde(stats, users_per_arm, power_target=power_target, **kw)),
        target_lift=target_lift,
        users_needed=int(metric_sample_size(stats, target_lift, power_target=power_target, **kw)),
        power_at_users=float(metric_power(stats, target_lift, users_per_arm, **kw)),
    )


def power_curve_frame(stats: Baseline, target_lift: float, max_users: float, alpha: float = 0.05,
                      points: int = 60) -> pd.DataFrame:
    """``users_per_arm, power`` for ``points`` sample sizes from 10 to ``max_users`` (log-spaced)."""
    n = np.unique(np.geomspace(10, max(max_users, 20), points).round())
    pw = [metric_power(stats, target_lift, float(x), alpha=alpha, relative=True) for x in n]
    return pd.DataFrame({"users_per_arm": n, "power": pw})


def plannable_metrics(columns: list[str]) -> list[str]:
    """Catalogue metrics whose columns are all in ``columns``."""
    return [m.name for m in CATALOGUE.values() if all(c in columns for c in m.columns)]
