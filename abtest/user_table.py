"""The per-user table: a public input (warehouses that already aggregate start here).

``users.parquet`` — one row per (user, segment):

=======================  ============  ==========================================================
column                   required      meaning
=======================  ============  ==========================================================
``user_id``              yes           string or integer, the randomisation unit
``arm``                  yes           string, the user's arm (one arm per user)
count columns            per metric    non-negative integers over the user's experiment period:
                                       ``impressions``, ``clicks``, ``long_clicks``, ``searches``,
                                       ``related_searches`` (only those the metrics read)
``pre_<count column>``   no            the same counts over the pre-period → CUPED covariates
``segment``              no            ``all`` (default when absent) or a slice such as
                                       ``head``/``torso``/``tail``; slice rows may be omitted for
                                       users without activity there (they count as zeros: the
                                       slice's population is every user of the arm)
``first_day``            no            day of first exposure (0 = experiment start), default 0
``experiment``           no            experiment name (one per table)
=======================  ============  ==========================================================

``user_days.parquet`` (optional, for the daily/cumulative time series): ``user_id``, ``arm``,
``day`` (>= 0) and the count columns, one row per (user, day) with activity.
Validation runs in DuckDB and names the file, column and first bad row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from abtest.logs import LogValidationError

COUNT_COLUMNS: tuple[str, ...] = ("impressions", "clicks", "long_clicks", "searches", "related_searches")


@dataclass(frozen=True)
class UserTableInfo:
    """What a validated per-user table offers: its path, columns and whether pre-period columns exist."""

    path: Path
    columns: tuple[str, ...]
    has_segment: bool
    has_first_day: bool
    experiment: str | None

    def has_pre(self, column: str) -> bool:
        return f"pre_{column}" in self.columns


def _schema(path: Path) -> pa.Schema:
    if not path.is_file():
        raise LogValidationError(path, "file not found (expected a per-user parquet table)")
    try:
        return pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LogValidationError(path, f"not a readable parquet file: {exc}") from None


def _first_bad(con, path: Path, cond: str) -> int | None:
    row = con.execute(
        f"SELECT file_row_number FROM read_parquet('{path}', file_row_number = true) WHERE {cond} "
        "ORDER BY file_row_number LIMIT 1"
    ).fetchone()
    return None if row is None else int(row[0])


def _sql_literal(value: object) -> str:
    """``value`` as a SQL literal: integers as is, anything else as a quoted string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def validate_user_table(path: str | Path, needed: Sequence[str], con, day_table: bool = False) -> UserTableInfo:
    """Check a per-user (or per-user-day) parquet table; raise :class:`LogValidationError` on problems.

    ``needed``: count columns the requested metrics read. Checks presence and integer types, nulls,
    negative counts, one arm per user and unique (user, segment) / (user, day) keys.
    """
    path = Path(path)
    schema = _schema(path)
    key = "day" if day_table else None
    required = ["user_id", "arm", *([key] if key else []), *needed]
    for col in required:
        if col not in schema.names:
            raise LogValidationError(
                path, f"missing required column; expected {required} (+ optional pre_*, segment, first_day), "
                f"found {schema.names}", column=col,
            )
    counts = [c for c in schema.names if c in COUNT_COLUMNS or (c.startswith("pre_") and c[4:] in COUNT_COLUMNS)]
    for col in ["user_id", "arm"]:
        t = schema.field(col).type
        ok = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)
        if col == "user_id":
            ok = ok or pa.types.is_integer(t)
        if not ok:
            raise LogValidationError(path, f"has type {t}, expected {'a string or integer id' if col == 'user_id' else 'string'}",
                                     column=col)
    for col in counts + ([key] if key else []):
        t = schema.field(col).type
        if not pa.types.is_integer(t):
            raise LogValidationError(path, f"has type {t}, expected a non-negative integer count", column=col)
    not_null = ["user_id", "arm", *counts, *([key] if key else [])]
    non_negative = counts + ([key] if key else [])
    conds = [f'"{c}" IS NULL' for c in not_null] + [f'"{c}" < 0' for c in non_negative]
    flags = con.execute("SELECT " + ", ".join(f"coalesce(bool_or({c}), false)" for c in conds)
                        + f" FROM read_parquet('{path}')").fetchone()
    if any(flags):  # one scan proves the table clean; only a problem pays for finding its first row
        for col in not_null:
            bad = _first_bad(con, path, f'"{col}" IS NULL')
            if bad is not None:
                raise LogValidationError(path, "is empty (null) but a value is required", column=col, row=bad)
        for col in non_negative:
            bad = _first_bad(con, path, f'"{col}" < 0')
            if bad is not None:
                raise LogValidationError(path, "must be >= 0", column=col, row=bad)
    multi = con.execute(
        f"SELECT user_id FROM read_parquet('{path}') GROUP BY user_id HAVING count(DISTINCT arm) > 1 LIMIT 1"
    ).fetchone()
    if multi is not None:
        bad = _first_bad(con, path, f"user_id = {_sql_literal(multi[0])}")
        raise LogValidationError(path, f"user {multi[0]!r} appears in more than one arm", column="arm", row=bad)
    seg = "segment" in schema.names
    dup_key = key or ("segment" if seg else None)
    dup_cols = "user_id" + (f", {dup_key}" if dup_key else "")
    dup = con.execute(
        f"SELECT {dup_cols} FROM read_parquet('{path}') GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
    ).fetchone()
    if dup is not None:
        raise LogValidationError(path, f"duplicate rows for ({dup_cols}) = {tuple(dup)}", column="user_id")
    experiment = None
    if "experiment" in schema.names:
        names = [r[0] for r in con.execute(f"SELECT DISTINCT experiment FROM read_parquet('{path}')").fetchall()]
        if len(names) > 1:
            raise LogValidationError(path, f"holds {len(names)} experiments {sorted(names)}; one per table",
                                     column="experiment")
        experiment = names[0] if names else None
    return UserTableInfo(path, tuple(schema.names), seg, "first_day" in schema.names, experiment)
