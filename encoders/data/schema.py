"""The on-disk data format: three parquet tables and their validation.

A dataset is a directory holding

``pins.parquet``
    ``pin_id: string`` (unique), ``text: string`` (non-empty), optional
    ``embedding: list<float32>`` (every row the same length D, finite) — the frozen pin space.
``engagements.parquet``
    ``query: string`` (normalised), ``pin_id: string`` (must exist in pins),
    ``task: string`` (e.g. ``organic``, ``shopping``), ``action: string`` (e.g. ``save``,
    ``long_click``), ``timestamp: timestamp[us, UTC]``.
``judgments.parquet``
    ``query: string`` (normalised), ``pin_id: string``, ``grade: float64`` (higher = more relevant).

Errors name the file, the column, the first offending row and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

PINS = "pins"
ENGAGEMENTS = "engagements"
JUDGMENTS = "judgments"


class DataValidationError(ValueError):
    """A data file does not match the documented format."""

    def __init__(self, file: str | Path, message: str, column: str | None = None, row: int | None = None):
        self.file, self.column, self.row = str(file), column, row
        where = [f"file {self.file}"]
        if column is not None:
            where.append(f"column '{column}'")
        if row is not None:
            where.append(f"row {row}")
        super().__init__(f"{', '.join(where)}: {message}")


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its arrow type, whether it must be present, whether nulls are allowed."""

    name: str
    type: pa.DataType
    required: bool = True
    nullable: bool = False


TIMESTAMP = pa.timestamp("us", tz="UTC")

SCHEMAS: Mapping[str, tuple[ColumnSpec, ...]] = {
    PINS: (
        ColumnSpec("pin_id", pa.string()),
        ColumnSpec("text", pa.string()),
        ColumnSpec("embedding", pa.list_(pa.float32()), required=False),
    ),
    ENGAGEMENTS: (
        ColumnSpec("query", pa.string()),
        ColumnSpec("pin_id", pa.string()),
        ColumnSpec("task", pa.string()),
        ColumnSpec("action", pa.string()),
        ColumnSpec("timestamp", TIMESTAMP),
    ),
    JUDGMENTS: (
        ColumnSpec("query", pa.string()),
        ColumnSpec("pin_id", pa.string()),
        ColumnSpec("grade", pa.float64()),
    ),
}


def arrow_schema(kind: str, with_embedding: bool = False) -> pa.Schema:
    """The canonical arrow schema of a table kind (``pins`` optionally with ``embedding``)."""
    cols = [c for c in SCHEMAS[kind] if c.required or (with_embedding and c.name == "embedding")]
    return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in cols])


def _first_true(mask: pa.Array | pa.ChunkedArray) -> int | None:
    idx = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False), dtype=bool))
    return int(idx[0]) if idx.size else None


def validate_table(table: pa.Table, kind: str, file: str | Path = "<table>") -> pa.Table:
    """Check ``table`` against the ``kind`` schema and cast it to the canonical types.

    Returns the table with columns in canonical order and types. Raises
    :class:`DataValidationError` naming the file, column and first bad row.
    """
    if kind not in SCHEMAS:
        raise ValueError(f"unknown table kind {kind!r}; expected one of {sorted(SCHEMAS)}")
    out = {}
    for spec in SCHEMAS[kind]:
        if spec.name not in table.column_names:
            if spec.required:
                raise DataValidationError(
                    file,
                    f"missing required column; expected columns {[c.name for c in SCHEMAS[kind] if c.required]}, "
                    f"found {table.column_names}",
                    column=spec.name,
                )
            continue
        col = table.column(spec.name)
        try:
            col = col.cast(spec.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataValidationError(
                file, f"cannot be read as {spec.type} (found {col.type}): {exc}", column=spec.name
            ) from None
        if not spec.nullable and col.null_count:
            raise DataValidationError(
                file, "is empty (null) but a value is required", column=spec.name, row=_first_true(col.is_null())
            )
        out[spec.name] = col
    result = pa.table(out)
    if kind == PINS:
        _check_pins(result, file)
    if kind == JUDGMENTS:
        bad = _first_true(pc.invert(pc.is_finite(result.column("grade"))))
        if bad is not None:
            raise DataValidationError(file, "grade must be a finite number", column="grade", row=bad)
    if kind in (ENGAGEMENTS, JUDGMENTS):
        bad = _first_true(pc.equal(pc.utf8_length(result.column("query")), 0))
        if bad is not None:
            raise DataValidationError(file, "query must be a non-empty string", column="query", row=bad)
    return result


def _check_pins(table: pa.Table, file: str | Path) -> None:
    ids = table.column("pin_id")
    if pc.count_distinct(ids).as_py() != len(ids):
        counts = pc.value_counts(ids)
        dup = next(v["values"].as_py() for v in counts if v["counts"].as_py() > 1)
        row = _first_true(pc.equal(ids, dup))
        raise DataValidationError(file, f"pin_id must be unique; {dup!r} repeats", column="pin_id", row=row)
    if "embedding" in table.column_names:
        lens = pc.list_value_length(table.column("embedding"))
        dim = lens[0].as_py() if len(lens) else 0
        bad = _first_true(pc.not_equal(lens, dim))
        if bad is not None:
            raise DataValidationError(
                file, f"every embedding must have the same length {dim}, found {lens[bad].as_py()}",
                column="embedding", row=bad,
            )
        if dim == 0 and len(lens):
            raise DataValidationError(file, "embeddings must not be empty", column="embedding", row=0)
        flat = pc.list_flatten(table.column("embedding"))
        bad_flat = _first_true(pc.invert(pc.is_finite(flat)))
        if bad_flat is not None:
            raise DataValidationError(file, "embedding values must be finite", column="embedding", row=bad_flat // dim)


def read_table(path: str | Path, kind: str, columns: list[str] | None = None) -> pa.Table:
    """Read and validate one table from a parquet file (a clear error if it is missing or not parquet)."""
    path = Path(path)
    if not path.exists():
        raise DataValidationError(path, f"file not found (expected a {kind} parquet file)")
    try:
        table = pq.read_table(path, columns=columns)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataValidationError(path, f"not a readable parquet file: {exc}") from None
    return validate_table(table, kind, path) if columns is None else table


def write_table(table: pa.Table, path: str | Path, kind: str) -> Path:
    """Validate and write one table as parquet (zstd); returns the path."""
    path = Path(path)
    table = validate_table(table, kind, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")
    return path


def pin_embedding_matrix(pins: pa.Table) -> np.ndarray:
    """The ``embedding`` column of a validated pins table as a float32 ``(N, D)`` array."""
    if "embedding" not in pins.column_names:
        raise ValueError("pins table has no 'embedding' column; run `searchsage pins embed` first")
    col = pins.column("embedding").combine_chunks()
    dim = len(col[0]) if len(col) else 0
    return np.asarray(col.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(col), dim)


@dataclass(frozen=True)
class DatasetPaths:
    """Where the three tables of a dataset directory live."""

    root: Path

    @property
    def pins(self) -> Path:
        return self.root / "pins.parquet"

    @property
    def engagements(self) -> Path:
        return self.root / "engagements.parquet"

    @property
    def judgments(self) -> Path:
        return self.root / "judgments.parquet"
