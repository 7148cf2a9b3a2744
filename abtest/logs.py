"""Experiment event logs: the four parquet tables, where they live, and their validation.

A **logs directory** holds one entry per table, either ``<table>.parquet`` or a directory
``<table>/`` of parquet part files (any number, read as one table, streamed):

``exposures``   ``experiment: string``, ``arm: string``, ``user_id: string``, ``timestamp``
                — one row per assignment/exposure; a user's first exposure starts their experiment.
``impressions`` ``user_id: string``, ``session_id: string``, ``query: string``, ``pin_id: string``,
                ``position: int`` (0-based rank on the page, >= 0), ``timestamp``
``clicks``      ``user_id``, ``session_id``, ``query``, ``pin_id``, ``position``, ``timestamp``,
                ``dwell_s: float`` (seconds on the clicked result, finite, >= 0)
``searches``    ``user_id``, ``session_id``, ``query``, ``timestamp``, ``is_related: bool``
                (true when the search came from a related-search suggestion)

``timestamp`` is any parquet timestamp (canonical ``timestamp[us, UTC]``). A **long click** is a
click with ``dwell_s >= long_click_s`` (35 s by default). Errors are :class:`LogValidationError`
naming the file, the column, the first offending row (0-based within that file) and what was
expected. Value checks are first proved from the parquet footers (null counts, string and
position minima); columns the statistics cannot clear (missing statistics, ``dwell_s``'s finiteness)
are scanned with pyarrow, one column at a time. Only when that finds a problem does the streamed
DuckDB scan run, to name the first offending row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from encoders.data.schema import DataValidationError

EXPOSURES, IMPRESSIONS, CLICKS, SEARCHES = "exposures", "impressions", "clicks", "searches"
TABLES: tuple[str, ...] = (EXPOSURES, IMPRESSIONS, CLICKS, SEARCHES)
DEFAULT_LONG_CLICK_S = 35.0


class LogValidationError(DataValidationError):
    """An event log does not match the documented schema (names file, column, row)."""


@dataclass(frozen=True)
class LogColumn:
    """One column of a log table: name, accepted type family, canonical arrow type."""

    name: str
    family: str  # "string" | "integer" | "number" | "bool" | "timestamp"
    canonical: pa.DataType


TS = pa.timestamp("us", tz="UTC")
LOG_SCHEMAS: Mapping[str, tuple[LogColumn, ...]] = {
    EXPOSURES: (
        LogColumn("experiment", "string", pa.string()),
        LogColumn("arm", "string", pa.string()),
        LogColumn("user_id", "string", pa.string()),
        LogColumn("timestamp", "timestamp", TS),
    ),
    IMPRESSIONS: (
        LogColumn("user_id", "string", pa.string()),
        LogColumn("session_id", "string", pa.string()),
        LogColumn("query", "string", pa.string()),
        LogColumn("pin_id", "string", pa.string()),
        LogColumn("position", "integer", pa.int32()),
        LogColumn("timestamp", "timestamp", TS),
    ),
    CLICKS: (
        LogColumn("user_id", "string", pa.string()),
        LogColumn("session_id", "string", pa.string()),
        LogColumn("query", "string", pa.string()),
        LogColumn("pin_id", "string", pa.string()),
        LogColumn("position", "integer", pa.int32()),
        LogColumn("timestamp", "timestamp", TS),
        LogColumn("dwell_s", "number", pa.float64()),
    ),
    SEARCHES: (
        LogColumn("user_id", "string", pa.string()),
        LogColumn("session_id", "string", pa.string()),
        LogColumn("query", "string", pa.string()),
        LogColumn("timestamp", "timestamp", TS),
        LogColumn("is_related", "bool", pa.bool_()),
    ),
}


def arrow_log_schema(table: str) -> pa.Schema:
    """The canonical arrow schema of one log table."""
    return pa.schema([pa.field(c.name, c.canonical, nullable=False) for c in LOG_SCHEMAS[table]])


def _in_family(t: pa.DataType, family: str) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return {
        "string": pa.types.is_string(t) or pa.types.is_large_string(t),
        "integer": pa.types.is_integer(t),
        "number": pa.types.is_integer(t) or pa.types.is_floating(t),
        "bool": pa.types.is_boolean(t),
        "timestamp": pa.types.is_timestamp(t),
    }[family]


def table_files(logs_dir: str | Path, table: str) -> list[Path]:
    """The parquet files of ``table`` in ``logs_dir`` (``table.parquet`` or ``table/*.parquet``)."""
    root = Path(logs_dir)
    single, folder = root / f"{table}.parquet", root / table
    if single.is_file():
        return [single]
    if folder.is_dir():
        files = sorted(folder.glob("*.parquet"))
        if files:
            return files
        raise LogValidationError(folder, f"the {table} directory holds no .parquet files")
    raise LogValidationError(
        root, f"missing the {table} log; expected {single.name} or a directory {folder.name}/ of parquet files"
    )


def check_file_schema(path: Path, table: str) -> None:
    """Check one parquet file's columns and types from its footer (no data read)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LogValidationError(path, f"not a readable parquet file: {exc}") from None
    expected = [c.name for c in LOG_SCHEMAS[table]]
    for col in LOG_SCHEMAS[table]:
        if col.name not in schema.names:
            raise LogValidationError(
                path, f"missing required column of the {table} log; expected columns {expected}, found {schema.names}",
                column=col.name,
            )
        found = schema.field(col.name).type
        if not _in_family(found, col.family):
            raise LogValidationError(
                path, f"has type {found}, expected a {col.family} column ({col.canonical})", column=col.name
            )


def _sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join("'" + str(p).replace("'", "''") + "'" for p in paths) + "]"


def scan_sql(logs_dir: str | Path, table: str, with_row_numbers: bool = False) -> str:
    """A DuckDB ``read_parquet`` expression over all files of ``table`` (schemas unified by name)."""
    files = table_files(logs_dir, table)
    extra = ", filename = true, file_row_number = true" if with_row_numbers else ""
    return f"read_parquet({_sql_list(files)}, union_by_name = true{extra})"


def _value_checks(table: str, arms: Sequence[str] | None) -> list[tuple[str, str, str]]:
    """(column, SQL condition that marks a bad row, message) for ``table``."""
    checks: list[tuple[str, str, str]] = []
    for col in LOG_SCHEMAS[table]:
        checks.append((col.name, f'"{col.name}" IS NULL', "is empty (null) but a value is required"))
        if col.family == "string":
            checks.append((col.name, f'length("{col.name}") = 0', "must be a non-empty string"))
    if table in (IMPRESSIONS, CLICKS):
        checks.append(("position", "position < 0", "position must be >= 0 (0-based rank)"))
    if table == CLICKS:
        checks.append(("dwell_s", "NOT isfinite(dwell_s::DOUBLE)", "dwell_s must be a finite number of seconds"))
        checks.append(("dwell_s", "dwell_s < 0", "dwell_s must be >= 0 seconds (negative dwell time)"))
    if table == EXPOSURES and arms:
        allowed = ", ".join("'" + a.replace("'", "''") + "'" for a in arms)
        checks.append(("arm", f"arm NOT IN ({allowed})", f"unknown arm; expected one of {list(arms)}"))
    return checks


def _check_kinds(table: str, arms: Sequence[str] | None) -> dict[str, set[str]]:
    """The checks of :func:`_value_checks` by column, as kinds: null, empty, negative, finite, arm."""
    kinds: dict[str, set[str]] = {}
    for col in LOG_SCHEMAS[table]:
        kinds[col.name] = {"null", "empty"} if col.family == "string" else {"null"}
    if table in (IMPRESSIONS, CLICKS):
        kinds["position"].add("negative")
    if table == CLICKS:
        kinds["dwell_s"] |= {"finite", "negative"}
    if table == EXPOSURES and arms:
        kinds["arm"].add("arm")
    return kinds


def _stats_clear(stats, physical: str, kinds: set[str], arms: Sequence[str] | None) -> set[str]:
    """The ``kinds`` one column chunk's footer statistics prove to hold."""
    if stats is None:
        return set()
    ok = set()
    if stats.has_null_count and stats.null_count == 0:
        ok.add("null")
    if not stats.has_min_max:
        return ok
    if "empty" in kinds and len(stats.min) > 0:
        ok.add("empty")
    if "negative" in kinds and isinstance(stats.min, int | float) and stats.min >= 0:
        ok.add("negative")
    if "finite" in kinds and physical in ("INT32", "INT64"):
        ok.add("finite")  # NaN never enters float statistics: only integers are proved finite
    if "arm" in kinds and stats.min == stats.max and stats.min in (arms or ()):
        ok.add("arm")
    return ok


def _column_clean(values: pa.ChunkedArray, kinds: set[str], arms: Sequence[str] | None) -> bool:
    """Vectorised value checks of one column (the same conditions as the SQL checks)."""
    import pyarrow.compute as pc

    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    if "null" in kinds and values.null_count:
        return False
    if "empty" in kinds and pc.any(pc.equal(pc.binary_length(values), 0)).as_py():
        return False
    if "finite" in kinds and pa.types.is_floating(values.type) and not pc.all(pc.is_finite(values)).as_py():
        return False
    if "negative" in kinds and pc.any(pc.less(values, 0)).as_py():
        return False
    allowed = pa.array(list(arms or ()), pa.string())
    return not ("arm" in kinds and not pc.all(pc.is_in(values.cast(pa.string()), value_set=allowed)).as_py())


def values_clean(logs_dir: str | Path, table: str, arms: Sequence[str] | None = None) -> bool:
    """True when every value check of ``table`` provably passes: from the footer statistics, else by a
    pyarrow scan of the columns they cannot clear. False means "run the SQL scan", not "invalid"."""
    kinds = _check_kinds(table, arms)
    for path in table_files(logs_dir, table):
        pf = pq.ParquetFile(path)
        md = pf.metadata
        names = [md.schema.column(i).name for i in range(md.num_columns)]
        scan = []
        for col, need in kinds.items():
            if col not in names:
                return False
            j = names.index(col)
            physical = md.schema.column(j).physical_type
            for rg in range(md.num_row_groups):
                chunk = md.row_group(rg).column(j)
                if need - _stats_clear(chunk.statistics if chunk.is_stats_set else None, physical, need, arms):
                    scan.append(col)
                    break
        for col in scan:
            for batch in pf.iter_batches(batch_size=1 << 20, columns=[col]):
                if not _column_clean(pa.chunked_array([batch.column(0)]), kinds[col], arms):
                    return False
    return True


def validate_table_values(con, logs_dir: str | Path, table: str, arms: Sequence[str] | None = None) -> None:
    """Check every value of ``table``; raise on the first bad row of the first failing check.

    Proved from the footers / pyarrow column scans when possible (:func:`values_clean`); otherwise one
    streamed DuckDB scan finds and names the first offending row.
    """
    if values_clean(logs_dir, table, arms):
        return
    checks = _value_checks(table, arms)
    flags = ", ".join(f"({cond}) AS c{i}" for i, (_, cond, _) in enumerate(checks))
    any_bad = " OR ".join(f"coalesce({cond}, true)" for _, cond, _ in checks)
    row = con.execute(
        f"SELECT filename, file_row_number, {flags} FROM {scan_sql(logs_dir, table, True)} "
        f"WHERE {any_bad} ORDER BY filename, file_row_number LIMIT 1"
    ).fetchone()
    if row is None:
        return
    filename, rownum, *hits = row
    for (column, _, message), hit in zip(checks, hits, strict=True):
        if hit is None or hit:
            detail = ""
            if column in ("arm", "dwell_s"):
                val = con.execute(
                    f"SELECT \"{column}\" FROM read_parquet('{filename}', file_row_number = true) "
                    f"WHERE file_row_number = {rownum}"
                ).fetchone()
                detail = f" (found {val[0]!r})" if val else ""
            raise LogValidationError(filename, message + detail, column=column, row=int(rownum))


def validate_logs(
    logs_dir: str | Path, arms: Sequence[str] | None = None, tables: Sequence[str] = TABLES, con=None
) -> dict[str, list[Path]]:
    """Validate every table of a logs directory: files, schemas, then values (streamed).

    ``arms``: when given, every exposure's arm must be one of them and each must have users.
    Returns ``{table: [files]}``. Raises :class:`LogValidationError` on the first problem.
    """
    import duckdb

    own = con is None
    con = con or duckdb.connect()
    try:
        files = {t: table_files(logs_dir, t) for t in tables}
        for t, paths in files.items():
            for p in paths:
                check_file_schema(p, t)
        for t in tables:
            validate_table_values(con, logs_dir, t, arms)
        if arms and EXPOSURES in tables:
            present = {r[0] for r in con.execute(f"SELECT DISTINCT arm FROM {scan_sql(logs_dir, EXPOSURES)}").fetchall()}
            for arm in arms:
                if arm not in present:
                    raise LogValidationError(
                        files[EXPOSURES][0].parent if len(files[EXPOSURES]) > 1 else files[EXPOSURES][0],
                        f"arm {arm!r} has no exposed users (empty arm); arms present: {sorted(present)}",
                        column="arm",
                    )
        return files
    finally:
        if own:
            con.close()


def write_log(table: pa.Table, path: str | Path, kind: str) -> Path:
    """Cast ``table`` to the canonical schema of log ``kind`` and write it as parquet (zstd)."""
    schema = arrow_log_schema(kind)
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise LogValidationError(path, f"cannot write the {kind} log; missing columns {missing}", column=missing[0])
    out = pa.table({f.name: table.column(f.name).cast(f.type) for f in schema}, schema=schema)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(out, path, compression="zstd")
    return path
