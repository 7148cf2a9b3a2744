"""Streaming aggregation of event logs into the per-user tables, in DuckDB.

Reads the logs directory (:mod:`abtest.logs`) with ``read_parquet`` (never loading it into
Python), under a DuckDB ``memory_limit`` with ``threads`` workers and a spill directory, and writes

* ``users.parquet`` — one row per (user, arm, segment): segment ``all`` for every exposed user
  (zeros when inactive) plus ``head``/``torso``/``tail`` rows for users with activity in that
  query segment (see :mod:`abtest.user_table` for the columns and conventions);
* ``user_days.parquet`` — one row per (user, arm, day) with in-experiment activity on that day.

Periods: a user's **experiment period** starts at their first exposure; the **pre-period** is
``[start - pre_period_days, start)`` where ``start`` is the experiment's first exposure; events in
between are dropped. ``day`` = whole days since ``start`` (UTC). Users exposed to more than one
arm are excluded and counted. Query segments: queries ranked by search volume over the whole log;
``head`` = queries holding the first ``head_share`` of searches, ``torso`` up to ``torso_share``,
the rest ``tail`` (or a ``query_segments.parquet`` with ``query, segment`` in the logs dir: one
row per query, a null segment is ``tail``, no segment may be called ``all``).

Two engines give the same tables (``AggregateConfig.engine``): ``numpy``
(:mod:`abtest.aggregate_stream`: pyarrow record batches, dictionary-encoded ids, ``np.bincount``
into dense per-user counters — memory ``5 × users × (2·segments + days)`` integers) and ``duckdb``
(the SQL below, spilling to ``temp_dir`` under ``memory_limit``). ``auto`` (default) is ``numpy``
unless its counters would exceed half of ``memory_limit``.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from abtest.logs import (
    CLICKS,
    DEFAULT_LONG_CLICK_S,
    EXPOSURES,
    IMPRESSIONS,
    SEARCHES,
    LogValidationError,
    scan_sql,
    validate_logs,
)

COUNT_COLUMNS: tuple[str, ...] = ("impressions", "clicks", "long_clicks", "searches", "related_searches")
ENGINES: tuple[str, ...] = ("auto", "numpy", "duckdb")


@dataclass
class AggregateConfig:
    """How logs are aggregated; ``memory_limit``/``threads`` bound DuckDB, ``temp_dir`` is its spill dir."""

    experiment: str | None = None
    arms: tuple[str, ...] | None = None
    long_click_s: float = DEFAULT_LONG_CLICK_S
    pre_period_days: int = 14
    head_share: float = 0.5
    torso_share: float = 0.8
    memory_limit: str = "1GB"
    threads: int = 2
    temp_dir: str | None = None
    validate: bool = True
    engine: str = "auto"

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {self.engine!r}")


@dataclass
class AggregateResult:
    """What :func:`aggregate_logs` wrote and saw (timestamps as ISO strings, UTC)."""

    users_path: Path
    user_days_path: Path
    experiment: str
    arms: dict[str, int]
    start: str
    end: str
    running_days: int
    multi_arm_users_excluded: int
    seconds: float
    config: dict = field(default_factory=dict)
    engine: str = "duckdb"  # the engine that ran: numpy | duckdb


def _connect(cfg: AggregateConfig, out_dir: Path):
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{cfg.memory_limit}'")
    con.execute(f"SET threads = {int(cfg.threads)}")
    spill = Path(cfg.temp_dir) if cfg.temp_dir else out_dir / ".duckdb_tmp"
    spill.mkdir(parents=True, exist_ok=True)
    con.execute(f"SET temp_directory = '{spill}'")
    con.execute("SET preserve_insertion_order = false")
    return con


def _pick_experiment(con, logs_dir: Path, wanted: str | None) -> str:
    names = [r[0] for r in con.execute(f"SELECT DISTINCT experiment FROM {scan_sql(logs_dir, EXPOSURES)}").fetchall()]
    return choose_experiment(names, logs_dir, wanted)


def choose_experiment(names: list[str], logs_dir: Path, wanted: str | None) -> str:
    """``wanted`` when it is among the exposures' experiment ``names``, else the only one present;
    a :class:`LogValidationError` naming the exposures otherwise (both engines)."""
    if wanted is not None:
        if wanted not in names:
            raise LogValidationError(
                logs_dir / "exposures", f"experiment {wanted!r} not found; experiments present: {sorted(names)}",
                column="experiment",
            )
        return wanted
    if len(names) != 1:
        raise LogValidationError(
            logs_dir / "exposures", f"{len(names)} experiments present {sorted(names)}; choose one with --experiment",
            column="experiment",
        )
    return names[0]


def read_custom_segments(logs_dir: Path):
    """``query_segments.parquet`` of the logs dir as an arrow table (``None`` when absent), checked:
    columns ``query`` and ``segment``, one row per query, no segment named ``all``."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = logs_dir / "query_segments.parquet"
    if not path.is_file():
        return None
    table = pq.read_table(path)
    for col in ("query", "segment"):
        if col not in table.column_names:
            raise LogValidationError(path, f"missing required column; expected query, segment, found "
                                     f"{table.column_names}", column=col)
    queries = table["query"].drop_null()
    if len(pc.unique(queries)) != len(queries):
        dup = table.group_by("query").aggregate([("query", "count")]).filter(pc.greater(pc.field("query_count"), 1))
        raise LogValidationError(path, f"query {dup['query'][0].as_py()!r} has more than one segment row",
                                 column="query")
    if pc.any(pc.equal(table["segment"], "all")).as_py():
        raise LogValidationError(path, "segment 'all' is reserved for the whole population", column="segment")
    return table


def _segments_sql(logs_dir: Path, cfg: AggregateConfig) -> str:
    if read_custom_segments(logs_dir) is not None:
        return f"SELECT query, segment FROM read_parquet('{logs_dir / 'query_segments.parquet'}')"
    return f"""
        WITH qc AS (SELECT query, count(*) AS n FROM {scan_sql(logs_dir, SEARCHES)} GROUP BY query),
        r AS (SELECT query, (sum(n) OVER (ORDER BY n DESC, query ROWS UNBOUNDED PRECEDING) - n)
                                / sum(n) OVER () AS before FROM qc)
        SELECT query, CASE WHEN before < {cfg.head_share} THEN 'head'
                           WHEN before < {cfg.torso_share} THEN 'torso' ELSE 'tail' END AS segment FROM r"""


def _events_sql(logs_dir: Path, cfg: AggregateConfig) -> str:
    """Per (user, segment, day) counts across the four event tables; day < 0 is the pre-period."""
    day = "CAST(floor((epoch_us(t.timestamp) - (SELECT s FROM bounds)) / 86400000000.0) AS INTEGER)"
    keep = (
        "(t.timestamp >= e.first_ts OR (epoch_us(t.timestamp) < (SELECT s FROM bounds) "
        f"AND epoch_us(t.timestamp) >= (SELECT s FROM bounds) - {int(cfg.pre_period_days)} * 86400000000))"
    )

    def part(table: str, cols: str) -> str:
        return (
            f"SELECT t.user_id, coalesce(q.segment, 'tail') AS segment, {day} AS day, {cols} "
            f"FROM {scan_sql(logs_dir, table)} t JOIN expo e ON t.user_id = e.user_id "
            f"LEFT JOIN qseg q ON t.query = q.query WHERE {keep} GROUP BY ALL"
        )

    z = "0::BIGINT"
    return " UNION ALL ".join(
        [
            part(IMPRESSIONS, f"count(*) AS impressions, {z} AS clicks, {z} AS long_clicks, {z} AS searches, "
                 f"{z} AS related_searches"),
            part(CLICKS, f"{z}, count(*), count(*) FILTER (WHERE dwell_s >= {float(cfg.long_click_s)}), {z}, {z}"),
            part(SEARCHES, f"{z}, {z}, {z}, count(*), count(*) FILTER (WHERE is_related)"),
        ]
    )


def aggregate_logs(logs_dir: str | Path, out_dir: str | Path, config: AggregateConfig | None = None) -> AggregateResult:
    """Aggregate a logs directory into ``out_dir/users.parquet`` and ``out_dir/user_days.parquet``.

    Validates the logs (``config.validate``), then aggregates with ``config.engine`` (see the module
    docstring); both engines stream the parquet files. Raises :class:`LogValidationError` for
    malformed logs.
    """
    cfg = config or AggregateConfig()
    logs_dir, out_dir = Path(logs_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if cfg.validate:
        import duckdb

        con = duckdb.connect()
        try:
            con.execute(f"SET memory_limit = '{cfg.memory_limit}'; SET threads = {int(cfg.threads)}")
            validate_logs(logs_dir, arms=cfg.arms, con=con)
        finally:
            con.close()
    if cfg.engine != "duckdb":
        from abtest.aggregate_stream import aggregate_stream

        res = aggregate_stream(logs_dir, out_dir, cfg, t0, fallback_if_large=cfg.engine == "auto")
        if res is not None:
            return res
    return _aggregate_duckdb(logs_dir, out_dir, cfg, t0)


def _aggregate_duckdb(logs_dir: Path, out_dir: Path, cfg: AggregateConfig, t0: float) -> AggregateResult:
    """The SQL engine: DuckDB over the parquet files, spilling to disk under ``memory_limit``."""
    con = _connect(cfg, out_dir)
    try:
        experiment = _pick_experiment(con, logs_dir, cfg.experiment)
        con.execute(
            f"""CREATE TEMP TABLE expo AS
                SELECT user_id, min(arm) AS arm, count(DISTINCT arm) AS n_arms, min(timestamp) AS first_ts
                FROM {scan_sql(logs_dir, EXPOSURES)} WHERE experiment = $1 GROUP BY user_id""",
            [experiment],
        )
        multi = con.execute("SELECT count(*) FROM expo WHERE n_arms > 1").fetchone()[0]
        con.execute("DELETE FROM expo WHERE n_arms > 1")
        con.execute("CREATE TEMP TABLE bounds AS SELECT epoch_us(min(first_ts)) AS s FROM expo")
        con.execute(f"CREATE TEMP TABLE qseg AS {_segments_sql(logs_dir, cfg)}")
        con.execute(
            "CREATE TEMP TABLE ev AS SELECT user_id, segment, day, "
            + ", ".join(f"sum({c})::BIGINT AS {c}" for c in COUNT_COLUMNS)
            + f" FROM ({_events_sql(logs_dir, cfg)}) GROUP BY ALL"
        )
        exp_sum = ", ".join(f"sum({c}) FILTER (WHERE day >= 0) AS {c}" for c in COUNT_COLUMNS)
        pre_sum = ", ".join(f"sum({c}) FILTER (WHERE day < 0) AS pre_{c}" for c in COUNT_COLUMNS)
        zero = ", ".join(
            f"coalesce(a.{c}, 0)::BIGINT AS {c}" for c in [*COUNT_COLUMNS, *(f"pre_{c}" for c in COUNT_COLUMNS)]
        )
        first_day = "CAST(floor((epoch_us(e.first_ts) - (SELECT s FROM bounds)) / 86400000000.0) AS INTEGER)"
        users_path = out_dir / "users.parquet"
        con.execute(
            f"""COPY (
                WITH a AS (SELECT user_id, coalesce(segment, 'all') AS segment, {exp_sum}, {pre_sum}
                           FROM ev GROUP BY GROUPING SETS ((user_id, segment), (user_id)))
                SELECT $1 AS experiment, e.user_id, e.arm, s.segment, {first_day} AS first_day, {zero}
                FROM expo e CROSS JOIN (VALUES ('all'), ('head'), ('torso'), ('tail')) s(segment)
                LEFT JOIN a ON a.user_id = e.user_id AND a.segment = s.segment
                WHERE s.segment = 'all' OR a.user_id IS NOT NULL
            ) TO '{users_path}' (FORMAT parquet, COMPRESSION zstd)""",
            [experiment],
        )
        days_path = out_dir / "user_days.parquet"
        day_cols = ", ".join(f"sum({c})::BIGINT AS {c}" for c in COUNT_COLUMNS)
        con.execute(
            f"""COPY (
                SELECT $1 AS experiment, ev.user_id, e.arm, ev.day, {day_cols}
                FROM ev JOIN expo e USING (user_id) WHERE ev.day >= 0 GROUP BY ALL
            ) TO '{days_path}' (FORMAT parquet, COMPRESSION zstd)""",
            [experiment],
        )
        arms = dict(con.execute("SELECT arm, count(*) FROM expo GROUP BY arm ORDER BY arm").fetchall())
        start, end, days = con.execute(
            "SELECT min(first_ts), (SELECT max(timestamp) FROM " + scan_sql(logs_dir, SEARCHES) + "), "
            "(SELECT coalesce(max(day), 0) + 1 FROM ev WHERE day >= 0) FROM expo"
        ).fetchone()
    finally:
        con.close()
        if not cfg.temp_dir:
            shutil.rmtree(out_dir / ".duckdb_tmp", ignore_errors=True)
    return AggregateResult(
        users_path=users_path, user_days_path=days_path, experiment=experiment, arms={k: int(v) for k, v in arms.items()},
        start=str(start), end=str(end), running_days=int(days), multi_arm_users_excluded=int(multi),
        seconds=time.perf_counter() - t0, config=asdict(cfg),
    )
