"""Streaming batch encode: a parquet/CSV file → a Feast offline-source parquet, in flat memory.

The input is read in chunks (``ParquetFile.iter_batches`` / pyarrow's streaming CSV reader),
each chunk is encoded by a :class:`~encoders.runtime.bundle.BundleEncoder` and appended to the
output with one ``pq.ParquetWriter``, so memory depends on ``chunk_rows``, not on the file size.

Output schema (one row group per chunk)::

    query | pin_id : string          entity key (normalised query text, or the pin id)
    embedding      : list<float32>   D values
    model_version  : string          the bundle's content hash
    event_timestamp: timestamp[us, UTC]

Query files: rows are normalised; rows whose normalised text is empty are skipped, and duplicate
keys inside one chunk are encoded and written once (duplicates across chunks carry equal values).
With a :class:`~encoders.runtime.pin_feedback.PinFeedbackIndex`, each chunk's query embeddings are
refined by pin-space feedback before they are written, and ``model_version`` gets its tag
(``<bundle version>+pinfb-k5-w0.1-<pins digest>``).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from encoders.normalize import normalize_query
from encoders.runtime.bundle import BundleEncoder
from encoders.runtime.config import EncodeConfig
from encoders.runtime.pin_feedback import PinFeedbackEncoder, PinFeedbackIndex

TIMESTAMP = pa.timestamp("us", tz="UTC")
DEFAULT_COLUMNS = {"query": ("query", "query"), "pin": ("text", "pin_id")}  # kind -> (text column, key column)


class EncodeInputError(ValueError):
    """The input file cannot be encoded: unknown format, missing column, or a null text (row named)."""


@dataclass
class StreamEncodeResult:
    """What :func:`encode_file` did: rows read / written / skipped, chunks, wall seconds, rows per second."""

    out: Path
    rows_in: int
    rows_out: int
    rows_skipped: int
    chunks: int
    seconds: float
    model_version: str
    dim: int

    @property
    def rows_per_s(self) -> float:
        return self.rows_in / self.seconds if self.seconds > 0 else 0.0


def output_schema(key_column: str, key_type: pa.DataType = pa.string()) -> pa.Schema:
    """The Feast offline-source schema written by :func:`encode_file`."""
    return pa.schema([
        pa.field(key_column, key_type, nullable=False),
        pa.field("embedding", pa.list_(pa.float32()), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("event_timestamp", TIMESTAMP, nullable=False),
    ])


def _rechunk(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.Table]:
    """Regroup record batches into tables of exactly ``rows`` rows (the last one may be shorter)."""
    pending: list[pa.RecordBatch] = []
    n = 0
    for b in batches:
        pending.append(b)
        n += b.num_rows
        while n >= rows:
            t = pa.Table.from_batches(pending)
            yield t.slice(0, rows)
            rest = t.slice(rows)
            pending = rest.to_batches()
            n = rest.num_rows
    if n:
        yield pa.Table.from_batches(pending)


def iter_input(
    path: str | Path, columns: list[str], chunk_rows: int, encoding: str = "utf8"
) -> Iterator[pa.Table]:
    """Stream ``columns`` of a ``.parquet`` or ``.csv`` file as tables of ``chunk_rows`` rows."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input file {path} not found")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        pf = pq.ParquetFile(path)
        have = pf.schema_arrow.names
        _check_columns(path, have, columns)
        yield from _rechunk(pf.iter_batches(batch_size=chunk_rows, columns=columns), chunk_rows)
    elif suffix in (".csv", ".tsv"):
        read = pacsv.ReadOptions(encoding=encoding, block_size=1 << 22)
        parse = pacsv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ",", newlines_in_values=True)
        conv = pacsv.ConvertOptions(include_columns=columns, column_types=dict.fromkeys(columns, pa.string()))
        try:
            reader = pacsv.open_csv(path, read_options=read, parse_options=parse, convert_options=conv)
        except (pa.ArrowInvalid, KeyError) as exc:
            header = path.open(encoding=encoding, errors="replace").readline().strip()
            raise EncodeInputError(f"{path}: cannot read columns {columns} (header: {header!r}): {exc}") from None
        yield from _rechunk(iter(reader), chunk_rows)
    else:
        raise EncodeInputError(f"{path}: unsupported input format {suffix!r}; expected .parquet or .csv")


def _check_columns(path: Path, have: list[str], want: list[str]) -> None:
    missing = [c for c in want if c not in have]
    if missing:
        raise EncodeInputError(f"{path} has no column(s) {missing}; available columns: {have}")


def _first_null(arr: pa.ChunkedArray | pa.Array) -> int | None:
    if arr.null_count == 0:
        return None
    return int(np.flatnonzero(pc.is_null(arr).to_numpy(zero_copy_only=False))[0])


def encode_file(
    encoder: BundleEncoder,
    input_path: str | Path,
    out_path: str | Path,
    column: str | None = None,
    key_column: str | None = None,
    chunk_rows: int = EncodeConfig.chunk_rows,
    event_timestamp: dt.datetime | None = None,
    encoding: str = EncodeConfig.encoding,
    progress: bool = True,
    feedback: PinFeedbackIndex | None = None,
) -> StreamEncodeResult:
    """Encode the ``column`` texts of ``input_path`` into a Feast offline source at ``out_path``.

    Query bundles: the key column is the normalised text (named ``query``), ``key_column`` is ignored.
    Pin bundles: ``column`` (default ``text``) is encoded and ``key_column`` (default ``pin_id``) kept.
    ``feedback`` (query bundles only): refine the embeddings against that pin index.
    Raises :class:`EncodeInputError` naming the file, column and row for a null value.
    """
    from tqdm.auto import tqdm

    if chunk_rows < 1:
        raise EncodeInputError(f"chunk_rows must be >= 1, got {chunk_rows}")
    kind = encoder.kind
    if feedback is not None:
        if kind != "query":
            raise EncodeInputError("pin feedback refines query embeddings; a pin bundle takes none")
        try:
            encoder = PinFeedbackEncoder(encoder, feedback)
        except ValueError as exc:
            raise EncodeInputError(str(exc)) from None
    default_text, default_key = DEFAULT_COLUMNS[kind]
    text_col = column or default_text
    key_col = "query" if kind == "query" else (key_column or default_key)
    out_key = "query" if kind == "query" else key_col
    columns = [text_col] if kind == "query" or key_col == text_col else [text_col, key_col]
    ts = (event_timestamp or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    total = pq.ParquetFile(input_path).metadata.num_rows if Path(input_path).suffix.lower() in (".parquet", ".pq") \
        and Path(input_path).is_file() else None
    schema = output_schema(out_key)
    rows_in = rows_out = skipped = chunks = 0
    t0 = time.perf_counter()
    tmp = out_path.with_name(out_path.name + ".tmp")
    bar = tqdm(total=total, desc=f"encode {kind}", unit="row", disable=not progress)
    try:
        with pq.ParquetWriter(tmp, schema) as writer:
            for table in iter_input(input_path, columns, chunk_rows, encoding):
                texts_arr = table.column(text_col)
                bad = _first_null(texts_arr)
                if bad is not None:
                    raise EncodeInputError(f"{input_path}: column {text_col!r} is null at row {rows_in + bad}")
                texts = texts_arr.to_pylist()
                if kind == "query":
                    keys = list(dict.fromkeys(k for k in (normalize_query(t) for t in texts) if k))
                    skipped += len(texts) - len(keys)
                    texts = keys
                else:
                    key_arr = table.column(key_col)
                    bad = _first_null(key_arr)
                    if bad is not None:
                        raise EncodeInputError(f"{input_path}: key column {key_col!r} is null at row {rows_in + bad}")
                    keys = key_arr.cast(pa.string()).to_pylist()
                emb = encoder.encode(texts)
                writer.write_table(_record_table(schema, keys, emb, encoder.model_version, ts))
                rows_in += table.num_rows
                rows_out += len(keys)
                chunks += 1
                bar.update(table.num_rows)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    tmp.replace(out_path)
    return StreamEncodeResult(out_path, rows_in, rows_out, skipped, chunks, time.perf_counter() - t0,
                              encoder.model_version, encoder.dim)


def _record_table(schema: pa.Schema, keys: list[str], emb: np.ndarray, version: str, ts: dt.datetime) -> pa.Table:
    """Arrow table for one chunk: ``emb`` is ``(n, D)`` float32, stored as a list<float32> column."""
    n, d = emb.shape
    flat = pa.array(np.ascontiguousarray(emb, dtype=np.float32).reshape(-1), type=pa.float32())
    offsets = pa.array(np.arange(0, (n + 1) * d, d, dtype=np.int32) if n else np.zeros(1, np.int32))
    lists = pa.ListArray.from_arrays(offsets, flat)
    return pa.Table.from_arrays([
        pa.array(keys, type=schema.field(0).type),
        lists,
        pa.array([version] * n, type=pa.string()),
        pa.array(np.full(n, np.datetime64(ts.replace(tzinfo=None), "us")), type=TIMESTAMP),
    ], schema=schema)
