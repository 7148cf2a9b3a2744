"""Sufficient statistics in SQL: per (arm, segment) and per (arm, day) sums and cross-products.

Everything the tests need is ``n``, ``Σv`` and ``Σ v_i v_j`` over users for a handful of per-user
variables ``v`` (count columns, their ``pre_`` covariates, and ``(col > 0)`` indicators), computed
by DuckDB straight from parquet; Python only ever sees one small row per group. Zero-filling:
slice rows missing for a user add nothing to the sums, and ``n`` of a slice is the arm's user count
(every exposed user belongs to every slice's population).

Capping (:mod:`abtest.stats.capping`): a capped variable ``col@q`` is ``least(col, cap)`` with ``cap``
the ``q`` quantile (``quantile_cont``) of ``col`` over segment ``all`` of every arm. The caps come
from one extra aggregate query over the per-user table (:func:`column_caps`), then the same single
moments query reads ``least(col, cap)``: no second pass over the raw event logs, and per-user values
never reach Python. Segment rows are capped at the all-users cap of their column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations_with_replacement

import numpy as np

from abtest.metrics import Metric
from abtest.stats.capping import ColumnCap
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


def capped(col: str, quantile: float) -> str:
    """Name of the variable ``col`` capped at its ``quantile`` (``col@q``)."""
    return f"{col}@{quantile:g}"


def variable_column(v: str) -> str:
    """The per-user column a variable reads (``any_c`` → ``c``, ``c@q`` → ``c``)."""
    return v[4:] if v.startswith("any_") else v.split("@", 1)[0]


def metric_variables(metric: Metric, cuped: bool, cap: float | None = None) -> tuple[str, ...]:
    """Variables of one metric: ``(y[, x])`` for mean/proportion, ``(num, den[, pre_num, pre_den])`` for ratios.

    ``cap``: the capping quantile of mean and ratio metrics (every column, pre-period ones included,
    capped at its own quantile); proportions are never capped.
    """
    if metric.kind == "proportion":
        base = (indicator(metric.numerator),)
        pre = (indicator(f"pre_{metric.numerator}"),)
    else:
        base, pre = metric.columns, metric.covariates
        if cap is not None:
            base, pre = tuple(capped(c, cap) for c in base), tuple(capped(c, cap) for c in pre)
    return base + pre if cuped else base


def variable_sql(v: str, caps: dict[str, ColumnCap] | None = None) -> str:
    """SQL expression of a variable over the per-user row (``caps`` gives the value of capped ones)."""
    if v.startswith("any_"):
        return f'("{v[4:]}" > 0)::DOUBLE'
    if "@" in v:
        if not caps or v not in caps:
            raise KeyError(f"capped variable {v!r} needs its cap (abtest.moments.column_caps)")
        cap = caps[v].cap
        col = f'"{variable_column(v)}"::DOUBLE'
        return col if cap != cap else f"least({col}, {cap!r})"
    return f'"{v}"::DOUBLE'


def column_caps(con, users_sql: str, variables: Sequence[str], ignore_zeros: bool = False,
                metric_of: dict[str, str] | None = None) -> dict[str, ColumnCap]:
    """``{col@q: ColumnCap}`` for the capped ``variables``: the quantile over segment ``all`` of every
    arm, and the number of users above it (two aggregate queries over the per-user relation)."""
    names = sorted({v for v in variables if "@" in v})
    if not names:
        return {}
    where = "segment = 'all'"
    cols = [f'"{variable_column(v)}"::DOUBLE' for v in names]
    flt = [f" FILTER (WHERE {c} <> 0)" if ignore_zeros else "" for c in cols]
    qs = [float(v.split("@", 1)[1]) for v in names]
    row = con.execute("SELECT count(*), " + ", ".join(
        f"quantile_cont({c}, {q!r}){f}" for c, q, f in zip(cols, qs, flt, strict=True))
        + f" FROM ({users_sql}) WHERE {where}").fetchone()
    n, caps = int(row[0]), [float("nan") if v is None else float(v) for v in row[1:]]
    above = con.execute("SELECT " + ", ".join(
        f"count(*) FILTER (WHERE {c} > {cap!r})" if cap == cap else "0" for c, cap in zip(cols, caps, strict=True))
        + f" FROM ({users_sql}) WHERE {where}").fetchone()
    metric_of = metric_of or {}
    return {v: ColumnCap(metric_of.get(v, ""), variable_column(v), q, cap, n, int(a), ignore_zeros)
            for v, q, cap, a in zip(names, qs, caps, above, strict=True)}


def sums_select(variables: Sequence[str], source: dict[str, str] | None = None) -> tuple[str, list[str], list[tuple]]:
    """SQL select list of ``Σv`` and pairwise ``Σab``; ``source`` overrides a variable's expression."""
    source = source or {}
    names = sorted(set(variables))
    expr = {v: source[v] if v in source else variable_sql(v) for v in names}
    pairs = list(combinations_with_replacement(names, 2))
    parts = [f"sum({expr[v]})" for v in names] + [f"sum(({expr[a]}) * ({expr[b]}))" for a, b in pairs]
    return ", ".join(parts), names, pairs


def moments_from_row(n: int, row: Sequence, names: list[str], pairs: list[tuple]) -> Moments:
    """Unpack one SQL row of :func:`sums_select` values (``None`` = no rows = 0)."""
    vals = [0.0 if v is None else float(v) for v in row]
    k = len(names)
    return Moments(int(n), dict(zip(names, vals[:k], strict=True)), dict(zip(pairs, vals[k:], strict=True)))


def group_moments(con, users_sql: str, variables: Sequence[str],
                  caps: dict[str, ColumnCap] | None = None) -> dict[tuple[str, str], Moments]:
    """``{(arm, segment): Moments}`` over a per-user relation ``users_sql`` (columns arm, segment, ...).

    ``n`` of every segment is the arm's number of users in segment ``all``; ``caps`` (from
    :func:`column_caps`) gives the capped variables' caps.
    """
    source = {v: variable_sql(v, caps) for v in variables if "@" in v}
    select, names, pairs = sums_select(variables, source)
    rows = con.execute(f"SELECT arm, segment, count(*), {select} FROM ({users_sql}) GROUP BY arm, segment").fetchall()
    n_all = {r[0]: int(r[2]) for r in rows if r[1] == "all"}
    return {(r[0], r[1]): moments_from_row(n_all.get(r[0], 0), r[3:], names, pairs) for r in rows}


def arm_stats(metric: Metric, m: Moments, cuped: bool, arm: str = "", cap: float | None = None):
    """The :mod:`abtest.stats` sufficient-statistics object of one arm for ``metric``.

    ``cuped`` → ``CovariateMeanStats``/``CovariateRatioStats`` (proportions use the mean form on the
    0/1 indicator); otherwise ``MeanStats``/``RatioStats``/``ProportionStats``. ``arm`` names the arm
    in the error raised for inconsistent sums (a variance negative beyond round-off). ``cap``: the
    capping quantile (reads the ``col@q`` variables).
    """
    v = metric_variables(metric, cuped, cap)
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
