"""The homefeed tables: user engagement events and (optional) interest ids, with validation.

A homefeed dataset directory holds the dataset tables of :mod:`encoders.data.schema` that it needs
(``pins.parquet`` with the frozen ``embedding`` column) plus

``events.parquet``
    ``user_id: string`` (non-empty), ``pin_id: string`` (must exist in pins), ``action: string`` (one
    of :data:`ACTIONS`), ``timestamp: timestamp[us, UTC]``. One row per engagement.
``user_interests.parquet`` (optional)
    ``user_id: string``, ``interest_id: string`` — the interests a user declared (one row per pair).
``pin_interests.parquet`` (optional)
    ``pin_id: string``, ``interest_id: string`` — the interest a pin belongs to; what conditional
    retrieval trains on (the condition of an engagement is its pin's interest).

Errors are :class:`encoders.data.schema.DataValidationError` naming the file, the column, the first
offending row and what was expected, as for the other tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from encoders.data.schema import TIMESTAMP, ColumnSpec, DatasetPaths, DataValidationError

EVENTS = "events"
USER_INTERESTS = "user_interests"
PIN_INTERESTS = "pin_interests"

#: Known actions, in the order the action embedding indexes them. ``hide`` is negative feedback:
#: it is kept in the table but is neither a history item nor a retrieval target.
ACTIONS: tuple[str, ...] = ("closeup", "click", "save", "hide")
POSITIVE_ACTIONS: tuple[str, ...] = ("closeup", "click", "save")

SCHEMAS: Mapping[str, tuple[ColumnSpec, ...]] = {
    EVENTS: (
        ColumnSpec("user_id", pa.string()),
        ColumnSpec("pin_id", pa.string()),
        ColumnSpec("action", pa.string()),
        ColumnSpec("timestamp", TIMESTAMP),
    ),
    USER_INTERESTS: (ColumnSpec("user_id", pa.string()), ColumnSpec("interest_id", pa.string())),
    PIN_INTERESTS: (ColumnSpec("pin_id", pa.string()), ColumnSpec("interest_id", pa.string())),
}


def _first(mask: pa.Array | pa.ChunkedArray) -> int | None:
    idx = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    return int(idx[0]) if idx.size else None


def validate_homefeed_table(table: pa.Table, kind: str, file: str | Path = "<table>",
                            pin_ids: pa.Array | None = None) -> pa.Table:
    """Check ``table`` against the ``kind`` schema and cast it to the canonical types and order.

    String columns must be non-empty; ``events.action`` must be one of :data:`ACTIONS`; with
    ``pin_ids`` given, every ``pin_id`` must be one of them. Raises :class:`DataValidationError`
    naming the file, the column and the first bad row.
    """
    if kind not in SCHEMAS:
        raise ValueError(f"unknown homefeed table kind {kind!r}; expected one of {sorted(SCHEMAS)}")
    out = {}
    for spec in SCHEMAS[kind]:
        if spec.name not in table.column_names:
            raise DataValidationError(
                file, f"missing required column; expected columns {[c.name for c in SCHEMAS[kind]]}, "
                f"found {table.column_names}", column=spec.name)
        col = table.column(spec.name)
        try:
            col = col.cast(spec.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataValidationError(
                file, f"cannot be read as {spec.type} (found {col.type}): {exc}", column=spec.name) from None
        if col.null_count:
            raise DataValidationError(file, "is empty (null) but a value is required", column=spec.name,
                                      row=_first(col.is_null()))
        if pa.types.is_string(spec.type):
            bad = _first(pc.equal(pc.utf8_length(col), 0))
            if bad is not None:
                raise DataValidationError(file, "must be a non-empty string", column=spec.name, row=bad)
        out[spec.name] = col
    result = pa.table(out)
    if kind == EVENTS:
        bad = _first(pc.invert(pc.is_in(result.column("action"), value_set=pa.array(ACTIONS))))
        if bad is not None:
            raise DataValidationError(
                file, f"unknown action {result.column('action')[bad].as_py()!r}; expected one of {list(ACTIONS)}",
                column="action", row=bad)
    if pin_ids is not None and "pin_id" in result.column_names:
        bad = _first(pc.invert(pc.is_in(result.column("pin_id"), value_set=pin_ids)))
        if bad is not None:
            raise DataValidationError(
                file, f"pin_id {result.column('pin_id')[bad].as_py()!r} is not in pins.parquet",
                column="pin_id", row=bad)
    return result


def read_homefeed_table(path: str | Path, kind: str, pin_ids: pa.Array | None = None) -> pa.Table:
    """Read and validate one homefeed table (a clear error when it is missing or not parquet)."""
    path = Path(path)
    if not path.exists():
        raise DataValidationError(path, f"file not found (expected a {kind} parquet file)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataValidationError(path, f"not a readable parquet file: {exc}") from None
    return validate_homefeed_table(table, kind, path, pin_ids)


def write_homefeed_table(table: pa.Table, path: str | Path, kind: str) -> Path:
    """Validate and write one homefeed table as parquet (zstd); returns the path."""
    path = Path(path)
    table = validate_homefeed_table(table, kind, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path


@dataclass(frozen=True)
class HomefeedPaths(DatasetPaths):
    """Where the tables of a homefeed dataset directory live (``pins`` as in :class:`DatasetPaths`)."""

    @property
    def events(self) -> Path:
        return self.root / "events.parquet"

    @property
    def user_interests(self) -> Path:
        return self.root / "user_interests.parquet"

    @property
    def pin_interests(self) -> Path:
        return self.root / "pin_interests.parquet"
