"""Sufficient statistics in SQL: per (arm, segment) and per (arm, day) sums and cross-products.

Everything the tests need is ``n``, ``Σv`` and ``Σ v_i v_j`` over users for a handful of per-user
variables ``v`` (count columns, their ``pre_`` covariates, and ``(col > 0)`` indicators), computed
by DuckDB straight from parquet; Python only ever sees one small row per group. Zero-filling:
slice rows missing for a user add nothing to the sums, and ``n`` of a slice is the arm's user count
(every exposed user belongs to every slice's population).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations_with_replacement

import numpy as np

from abtest.metrics import Metric
from abtest.stats.sufficient import (
    CovariateMeanStats,
    CovariateRatioStats,
    MeanStats,
    ProportionStats,
    RatioStats,
)


@dataclass
class Moments:
    """``n`` users and ``sums[v] = Σv``, ``cross[(a, b)] = Σ a·b`` (``a <= b`` by name) for one group."""

    n: int
    sums: dict[str, float] = field(default_factory=dict)
    cross: dict[tuple[str, str], float] = field(default_factory=dict)

    def s(self, v: str) -> float:
        return self.sums[v]

    def c(self, a: str, b: str) -> float:
        return self.cross[(a, b) if a <= b else (b, a)]

    def vec(self, names: Sequence[str]) -> np.ndarray:
        """``(k,)`` sums of ``names``."""
        return np.array([self.s(v) for v in names], dtype=np.float64)

    def mat(self, names: Sequence[str]) -> np.ndarray:
        """``(k, k)`` cross-products of ``names``."""
        return np.array([[self.c(a, b) for b in names] for a in names], dtype=np.float64)


def indicator(col: str) -> str:
    """Name of the ``(col > 0)`` indicator variable."""
    return f"any_{col}"


def metric_variables(metric: Metric, cuped: bool) -> tuple[str, ...]:
    """Variables of one metric: ``(y[, x])`` for mean/proportion, ``(num, den[, pre_num, pre_den])`` for ratios."""
    if metric.kind == "proportion":
        base = (indicator(metric.numerator),)
        pre = (indicator(f"pre_{metric.numerator}"),)
    else:
        base, pre = metric.columns, metric.covariates
    return base + pre if cuped else base


def variable_sql(v: str) -> str:
    """SQL expression of a variable over the per-user row."""
    if v.startswith("any_"):
        return f'("{v[4:]}" > 0)::DOUBLE'
    return f'"{v}"::DOUBLE'


def sums_select(variables: Sequence[str], source: dict[str, str] | None = None) -> tuple[str, list[str], list[tuple]]:
    """SQL select list of ``Σv`` and pairwise ``Σab``; ``source`` overrides a variable's expression."""
    source = source or {}
    names = sorted(set(variables))
    expr = {v: source.get(v, variable_sql(v)) for v in names}
    pairs = list(combinations_with_replacement(names, 2))
    parts = [f"sum({expr[v]})" for v in names] + [f"sum(({expr[a]}) * ({expr[b]}))" for a, b in pairs]
    return ", ".join(parts), names, pairs


def moments_from_row(n: int, row: Sequence, names: list[str], pairs: list[tuple]) -> Moments:
    """Unpack one SQL row of :func:`sums_select` values (``None`` = no rows = 0)."""
    vals = [0.0 if v is None else float(v) for v in row]
    k = len(names)
    return Moments(int(n), dict(zip(names, vals[:k], strict=True)), dict(zip(pairs, vals[k:], strict=True)))


def group_moments(con, users_sql: str, variables: Sequence[str]) -> dict[tuple[str, str], Moments]:
    """``{(arm, segment): Moments}`` over a per-user relation ``users_sql`` (columns arm, segment, ...).

    ``n`` of every segment is the arm's number of users in segment ``all``.
    """
    select, names, pairs = sums_select(variables)
    rows = con.execute(f"SELECT arm, segment, count(*), {select} FROM ({users_sql}) GROUP BY arm, segment").fetchall()
    n_all = {r[0]: int(r[2]) for r in rows if r[1] == "all"}
    return {(r[0], r[1]): moments_from_row(n_all.get(r[0], 0), r[3:], names, pairs) for r in rows}


def arm_stats(metric: Metric, m: Moments, cuped: bool, arm: str = ""):
    """The :mod:`abtest.stats` sufficient-statistics object of one arm for ``metric``.

    ``cuped`` → ``CovariateMeanStats``/``CovariateRatioStats`` (proportions use the mean form on the
    0/1 indicator); otherwise ``MeanStats``/``RatioStats``/``ProportionStats``. ``arm`` names the arm
    in the error raised for inconsistent sums (a variance negative beyond round-off).
    """
    v = metric_variables(metric, cuped)
    who = {"metric": metric.name, "arm": arm}
    if metric.kind == "ratio":
        if cuped:
            return CovariateRatioStats.from_sums(m.n, m.vec(v), m.mat(v), **who)
        num, den = v
        return RatioStats.from_sums(m.n, m.s(num), m.s(den), m.c(num, num), m.c(den, den), m.c(num, den), **who)
    if cuped:
        y, x = v
        return CovariateMeanStats.from_sums(m.n, m.s(y), m.s(x), m.c(y, y), m.c(x, x), m.c(x, y), **who)
    (y,) = v
    if metric.kind == "proportion":
        return ProportionStats(m.n, round(m.s(y)))
    return MeanStats.from_sums(m.n, m.s(y), m.c(y, y), **who)


def moments_from_arrays(columns: dict[str, np.ndarray], variables: Sequence[str]) -> Moments:
    """The numpy twin of the SQL sums for one group: ``columns[c] (n,)`` per-user counts → :class:`Moments`."""
    names = sorted(set(variables))
    vals = {}
    for v in names:
        col = np.asarray(columns[v[4:] if v.startswith("any_") else v], dtype=np.float64)
        vals[v] = (col > 0).astype(np.float64) if v.startswith("any_") else col
    n = len(next(iter(vals.values()))) if vals else 0
    pairs = list(combinations_with_replacement(names, 2))
    return Moments(n, {v: float(vals[v].sum()) for v in names},
                   {(a, b): float(vals[a] @ vals[b]) for a, b in pairs})
