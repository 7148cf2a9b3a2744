"""Daily and cumulative time series of every metric per arm, with the treatment-vs-control delta.

From ``users.parquet`` (arm, ``first_day``) and ``user_days.parquet`` (per-user activity per day):

* **daily** — day ``d``'s metric over the users exposed by day ``d`` (inactive ones count as 0);
* **cumulative** — each user's totals over days ``0..d`` (what the final analysis sees at day ``d``).

Sums come from dense numpy blocks of (user, day) counts (:mod:`abtest.series_dense`), or from DuckDB
(a range join spreads each user's running totals over the days they hold) for tables that need it.
Tests are the unadjusted ones (no CUPED, no correction) — the series is for reading trends; the
decision is the final results table. With ``sequential=True`` the cumulative rows also carry the
always-valid interval (safe to read every day).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from abtest.metrics import Metric
from abtest.moments import Moments, arm_stats, metric_variables, moments_from_row, sums_select
from abtest.series_dense import dense_series_moments
from abtest.stats.delta import ratio_ttest
from abtest.stats.errors import StatsInputError
from abtest.stats.proportion import proportion_test
from abtest.stats.sequential import sequential_test
from abtest.stats.ttest import welch_ttest


@dataclass
class SeriesConfig:
    """``control`` arm, ``alpha``, optional sequential intervals tuned to ``n_tune`` total users."""

    control: str
    alpha: float = 0.05
    sequential: bool = False
    n_tune: float | None = None
    start_date: str | None = None


def _test(metric: Metric, sc, st, names: tuple[str, str], alpha: float):
    kw = {"metric": metric.name, "control_name": names[0], "treatment_name": names[1], "alpha": alpha}
    if metric.kind == "ratio":
        return ratio_ttest(sc, st, **kw)
    if metric.kind == "proportion":
        return proportion_test(sc, st, **kw)
    return welch_ttest(sc, st, **kw)


def _population(con, users_path: Path, n_days: int) -> dict[tuple[str, int], int]:
    """``{(arm, day): users with first_day <= day}`` for days ``0..n_days-1`` (segment ``all``), from one
    small group-by and a running sum (no users × days join)."""
    cols = con.execute(f"SELECT * FROM read_parquet('{users_path}') LIMIT 0").fetchdf().columns
    first_day = "first_day" if "first_day" in cols else "0"
    seg = "segment = 'all'" if "segment" in cols else "true"
    rows = con.execute(f"SELECT arm, {first_day}, count(*) FROM read_parquet('{users_path}') "
                       f"WHERE {seg} AND {first_day} IS NOT NULL GROUP BY ALL").fetchall()
    pop: dict[tuple[str, int], int] = {}
    for arm in sorted({r[0] for r in rows}, key=str):
        starts = sorted((int(fd), int(n)) for a, fd, n in rows if a == arm)
        firsts, ns = np.array([fd for fd, _ in starts]), np.array([n for _, n in starts])
        running = np.cumsum(ns)
        for day in range(int(n_days)):
            k = int(np.searchsorted(firsts, day, side="right"))
            if k:
                pop[(arm, day)] = int(running[k - 1])
    return pop


def _int_column(values: pa.ChunkedArray) -> np.ndarray:
    """An integer column as numpy: int32 when every value fits, else int64."""
    arr = np.asarray(values.combine_chunks() if values.num_chunks != 1 else values.chunk(0), dtype=np.int64)
    return arr.astype(np.int32) if arr.size and arr.min() >= -(2**31) and arr.max() < 2**31 else arr


def _dense_moments(days_path: Path, cols: list[str], variables: list[str], n_days: int,
                   pop: dict[tuple[str, int], int]) -> dict[tuple[str, str, int], Moments] | None:
    """The numpy path (:mod:`abtest.series_dense`); ``None`` when the table needs the SQL one.
    Reads a column at a time (ids → dictionary codes first), so memory is the integer vectors."""
    schema = pq.read_schema(days_path)
    if not all(pa.types.is_integer(schema.field(c).type) for c in ["day", *cols]):
        return None
    ids = pq.read_table(days_path, columns=["user_id", "arm", "day"])
    if any(ids[c].null_count for c in ids.column_names):
        return None
    codes = {}
    for c in ("user_id", "arm"):
        col = ids[c].combine_chunks() if ids.num_rows else pa.array([], pa.string())
        codes[c] = col if pa.types.is_dictionary(col.type) else pc.dictionary_encode(col)
    user, arm = (np.asarray(codes[c].indices, dtype=np.int64) for c in ("user_id", "arm"))
    arm_names = codes["arm"].dictionary.to_pylist()
    day = np.asarray(ids["day"].combine_chunks(), dtype=np.int64)
    del ids, codes
    counts = {}
    for c in cols:
        values = pq.read_table(days_path, columns=[c])[c]
        if values.null_count:
            return None
        counts[c] = _int_column(values)
    pa.default_memory_pool().release_unused()
    return dense_series_moments(user, arm, arm_names, day, counts, variables, n_days, pop)


def series_moments(con, users_path: Path, days_path: Path, variables: list[str],
                   dense: bool = True) -> dict[tuple[str, str, int], Moments]:
    """``{(series, arm, day): Moments}`` for series ``daily`` and ``cumulative``.

    numpy over dense (user, day) blocks when ``dense`` and the per-user-day table is well formed
    (:mod:`abtest.series_dense`), else SQL (a window of running totals joined to the days they hold);
    both give the same sums.
    """
    n_days = con.execute(f"SELECT coalesce(max(day), -1) + 1 FROM read_parquet('{days_path}')").fetchone()[0]
    cols = sorted({v[4:] if v.startswith("any_") else v for v in variables})
    pop = _population(con, users_path, int(n_days))
    select, names, pairs = sums_select(variables)
    out = _dense_moments(days_path, cols, variables, int(n_days), pop) if dense else None
    if out is None:
        out = {}
        con.execute(f"CREATE OR REPLACE TEMP TABLE grid AS SELECT range AS day FROM range({int(n_days)})")
        daily = con.execute(
            f"SELECT arm, day, {select} FROM read_parquet('{days_path}') GROUP BY arm, day").fetchall()
        cum_cols = ", ".join(f'sum("{c}") OVER w AS "{c}"' for c in cols)
        cumulative = con.execute(
            f"""WITH c AS (SELECT arm, day, {cum_cols}, lead(day, 1, {int(n_days)}) OVER w AS next_day
                           FROM read_parquet('{days_path}') WINDOW w AS (PARTITION BY user_id ORDER BY day))
                SELECT c.arm, g.day, {select} FROM c JOIN grid g ON g.day >= c.day AND g.day < c.next_day
                GROUP BY c.arm, g.day"""
        ).fetchall()
        for series, rows in (("daily", daily), ("cumulative", cumulative)):
            for arm, day, *vals in rows:
                out[(series, arm, int(day))] = moments_from_row(pop.get((arm, int(day)), 0), vals, names, pairs)
    for arm, day in pop:  # days where an arm had exposed users but no activity
        for series in ("daily", "cumulative"):
            out.setdefault((series, arm, int(day)), moments_from_row(pop[(arm, day)], [0.0] * (len(names) + len(pairs)),
                                                                    names, pairs))
    return out


def build_timeseries(con, users_path: str | Path, days_path: str | Path, metrics: list[Metric],
                     cfg: SeriesConfig) -> pd.DataFrame:
    """Tidy table: ``series, day, date, metric, arm, value, n`` plus delta/CI/p on treatment rows."""
    variables = sorted({v for m in metrics for v in metric_variables(m, False)})
    mom = series_moments(con, Path(users_path), Path(days_path), variables)
    start = pd.Timestamp(cfg.start_date).normalize() if cfg.start_date else None
    rows = []
    for (series, arm, day), m in sorted(mom.items()):
        if arm != cfg.control and (series, cfg.control, day) not in mom:
            continue
        for metric in metrics:
            row = {"series": series, "day": day, "date": None if start is None else (start + pd.Timedelta(days=day)).date(),
                   "metric": metric.name, "arm": arm, "n": m.n}
            try:
                st = arm_stats(metric, m, False)
                row["value"] = float(getattr(st, "ratio", getattr(st, "mean", getattr(st, "p", math.nan))))
                if arm != cfg.control:
                    sc = arm_stats(metric, mom[(series, cfg.control, day)], False)
                    res = _test(metric, sc, st, (cfg.control, arm), cfg.alpha)
                    row.update(abs_delta=res.abs_delta, abs_ci_low=res.abs_ci[0], abs_ci_high=res.abs_ci[1],
                               rel_delta=res.rel_delta, rel_ci_low=res.rel_ci[0], rel_ci_high=res.rel_ci[1],
                               p_value=res.p_value)
                    if cfg.sequential and series == "cumulative":
                        seq = sequential_test(sc, st, n_tune=cfg.n_tune or (sc.n + st.n) * 1.0, alpha=cfg.alpha,
                                              metric=metric.name)
                        row.update(seq_ci_low=seq.abs_ci[0], seq_ci_high=seq.abs_ci[1], seq_p_value=seq.p_value)
            except (StatsInputError, ZeroDivisionError) as exc:
                row["note"] = str(exc)
            rows.append(row)
    cols = ["series", "day", "date", "metric", "arm", "value", "n", "abs_delta", "abs_ci_low", "abs_ci_high",
            "rel_delta", "rel_ci_low", "rel_ci_high", "p_value", "seq_ci_low", "seq_ci_high", "seq_p_value", "note"]
    df = pd.DataFrame(rows)
    for c in cols:
        if c not in df.columns:
            df[c] = None
    return df[cols]
