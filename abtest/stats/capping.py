"""Percentile capping (winsorisation from above) of per-user metric values.

Convention (GrowthBook's "percentile capping"; Statsig's winsorisation defaults to 0.999):

* the cap of a per-user column is its ``quantile`` over **all users of all arms** of the experiment
  (pooled, so the cap does not depend on the treatment), by linear interpolation between order
  statistics (numpy's default ``method="linear"`` = DuckDB ``quantile_cont`` = SQL
  ``PERCENTILE_CONT``); users with 0 are part of the population unless ``ignore_zeros`` (Statsig
  computes the percentile over non-zero values only);
* every per-user value above the cap is replaced by the cap (``min(x, cap)``); values are never
  raised, nobody is dropped;
* a ratio metric caps its numerator and its denominator per user, each at the same quantile of its
  own distribution; proportion metrics (``x > 0`` indicators) are not capped (capping cannot change
  an indicator unless the cap is 0, when it would erase the metric).

Pure numpy; :mod:`abtest.analysis` computes the same quantile in SQL over the per-user table.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from abtest.stats.errors import StatsInputError


def check_quantile(q: float, metric: str = "") -> float:
    """Return ``q`` or raise unless ``0 < q < 1``."""
    if not (isinstance(q, int | float) and 0.0 < q < 1.0):
        raise StatsInputError(f"cap quantile must be in (0, 1), got {q!r}", metric)
    return float(q)


@dataclass(frozen=True)
class ColumnCap:
    """The cap of one per-user column: ``cap`` is the ``quantile`` of ``n_users`` values; ``n_capped``
    users had a value strictly above it (``share_capped = n_capped / n_users``)."""

    metric: str
    column: str
    quantile: float
    cap: float
    n_users: int
    n_capped: int
    ignore_zeros: bool = False

    @property
    def share_capped(self) -> float:
        return self.n_capped / self.n_users if self.n_users else math.nan

    def to_dict(self) -> dict:
        return {**asdict(self), "share_capped": self.share_capped}


def cap_value(values: np.ndarray, quantile: float, ignore_zeros: bool = False) -> float:
    """The cap: ``quantile`` of ``values (n,)`` (pooled over arms), linear interpolation.

    ``nan`` when there is no value (all zero with ``ignore_zeros``).
    """
    check_quantile(quantile)
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(x)):
        raise StatsInputError("per-user values must be finite to compute a cap")
    if ignore_zeros:
        x = x[x != 0]
    return float(np.quantile(x, quantile)) if x.size else math.nan


def cap_column(
    values: np.ndarray, quantile: float, *, metric: str = "", column: str = "", ignore_zeros: bool = False
) -> tuple[np.ndarray, ColumnCap]:
    """``(min(values, cap), ColumnCap)`` for one per-user column pooled over arms."""
    x = np.asarray(values, dtype=np.float64).ravel()
    cap = cap_value(x, quantile, ignore_zeros)
    if math.isnan(cap):
        return x.copy(), ColumnCap(metric, column, quantile, cap, int(x.size), 0, ignore_zeros)
    return np.minimum(x, cap), ColumnCap(metric, column, quantile, cap, int(x.size), int((x > cap).sum()),
                                         ignore_zeros)


def cap_ratio(
    num: np.ndarray, den: np.ndarray, quantile: float, *, metric: str = "", ignore_zeros: bool = False
) -> tuple[np.ndarray, np.ndarray, tuple[ColumnCap, ColumnCap]]:
    """Cap a ratio metric's per-user numerator and denominator, each at its own ``quantile``."""
    n, cn = cap_column(num, quantile, metric=metric, column="numerator", ignore_zeros=ignore_zeros)
    d, cd = cap_column(den, quantile, metric=metric, column="denominator", ignore_zeros=ignore_zeros)
    return n, d, (cn, cd)
