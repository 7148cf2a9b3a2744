"""The repository's offline sources: what ``feast materialize-incremental`` reads.

``data/queries.parquet``: ``query`` (raw text), ``event_timestamp`` (UTC).
``data/pins.parquet``: ``pin_id``, ``text``, ``event_timestamp`` (UTC), and when the pins come with
their own frozen vectors ``embedding`` (list<float32>; null = embed ``text`` with the bundle's pin
tower) and optionally ``model_version``.

:func:`ingest_pins` / :func:`ingest_queries` (``searchsage feast ingest``) put a user's parquet or
CSV file into these sources: columns and ids are checked first (errors name the file, the column and
the row), then rows are merged by key — an unchanged row keeps its event time (the file is not even
rewritten when nothing changed), a new or changed row is stamped so that the next
``materialize-incremental`` picks it up. :func:`append_pins` / :func:`append_queries` are the old
append-only helpers (tests, the demo). Sources are rewritten whole: fine up to a few million rows;
production sources are partitioned parquet written by the logging pipeline.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from encoders.featurestore.contract import PIN_VIEW, QUERY_VIEW

QUERIES_FILE = "data/queries.parquet"
PINS_FILE = "data/pins.parquet"
TS = "event_timestamp"
_SPLIT = re.compile(r"[,\s;]+")


class IngestError(ValueError):
    """Bad input for ingestion; the message names the file, the column and the row."""


@dataclass
class IngestReport:
    """What one ingestion did to ``source``."""

    source: Path
    kind: str
    new: int = 0
    changed: int = 0
    unchanged: int = 0
    duplicates: int = 0
    with_vectors: int = 0
    skipped: int = 0
    stamped: datetime | None = None
    older_than_materialised: int = 0

    def summary(self) -> str:
        parts = [f"{self.new} new", f"{self.changed} changed", f"{self.unchanged} unchanged"]
        if self.kind == "pins":
            parts.append(f"{self.with_vectors} with their own embedding")
        if self.duplicates:
            parts.append(f"{self.duplicates} repeated ids (last row kept)" if self.kind == "pins"
                         else f"{self.duplicates} repeats")
        if self.skipped:
            parts.append(f"{self.skipped} blank queries skipped")
        when = f", event time {self.stamped.isoformat()}" if self.stamped and (self.new or self.changed) else ""
        return f"{self.source}: {self.kind}: " + ", ".join(parts) + when


# --- reading the user's file -------------------------------------------------------------------------


def read_user_file(path: Path, columns: Sequence[str] | None = None, encoding: str = "utf-8") -> pd.DataFrame:
    """A parquet or CSV file as a DataFrame (CSV cells as strings); unknown suffixes are refused."""
    path = Path(path)
    if not path.is_file():
        raise IngestError(f"file {path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            have = pq.read_schema(path).names
            return pd.read_parquet(path, columns=[c for c in (columns or have) if c in have])
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding,
                               sep="\t" if suffix == ".tsv" else ",")
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise IngestError(f"file {path}: cannot read it ({exc})") from None
    raise IngestError(f"file {path}: expected a .parquet or .csv file")


def _require(df: pd.DataFrame, path: Path, column: str, flag: str) -> None:
    if column not in df.columns:
        raise IngestError(f"file {path}: no column {column!r} (columns: {', '.join(map(str, df.columns))}); "
                          f"name yours with {flag}")


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and not v.strip())


def _vector(v: Any, path: Path, column: str, row: int) -> np.ndarray | None:
    """One cell of the embedding column as float32 (None when empty)."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, str):
        body = v.strip().strip("[]()").strip()
        if not body:
            return None
        try:
            v = [float(x) for x in _SPLIT.split(body) if x]
        except ValueError:
            raise IngestError(f"file {path}, column {column!r}, row {row}: cannot read {v[:40]!r} as numbers "
                              "(expected e.g. \"[0.1, -0.2, ...]\")") from None
    try:
        arr = np.asarray(v, dtype=np.float32)
    except (TypeError, ValueError):
        raise IngestError(f"file {path}, column {column!r}, row {row}: not a list of numbers") from None
    if arr.ndim != 1:
        raise IngestError(f"file {path}, column {column!r}, row {row}: not a flat list of numbers")
    if arr.size == 0:
        return None
    if not np.isfinite(arr).all():
        raise IngestError(f"file {path}, column {column!r}, row {row}: NaN or infinite value")
    return arr


def _timestamps(df: pd.DataFrame, path: Path, column: str | None) -> pd.Series | None:
    if column is None:
        return None
    _require(df, path, column, "--timestamp-column")
    parsed = pd.to_datetime(df[column].replace("", None), utc=True, errors="coerce")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        raise IngestError(f"file {path}, column {column!r}, row {bad[0] + 1}: not a timestamp "
                          f"({df[column].iloc[bad[0]]!r})")
    return parsed.astype("datetime64[us, UTC]")


# --- the repository side -------------------------------------------------------------------------------


def _stamp_now(last_end: datetime | None) -> datetime:
    """Event time for new rows: a whole second before now, so that a ``materialize-incremental`` whose
    end is now to the second (``$(date -u +%FT%T)``) includes them; never before the view's last
    materialisation end, where the next incremental run starts."""
    ts = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=1)
    return max(ts, last_end) if last_end is not None else ts


def registry_view(repo: Path, view: str) -> Any | None:
    """The applied feature view ``view`` of ``repo`` (None when not applied or unreadable)."""
    if not (Path(repo) / "data" / "registry.db").exists():
        return None
    try:
        import warnings

        from feast import FeatureStore

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return FeatureStore(repo_path=str(repo)).get_feature_view(view)
    except Exception:  # an unreadable registry only means "no history to respect"
        return None


def last_materialised(view: Any | None) -> datetime | None:
    """End of the latest materialisation interval of ``view`` (UTC), None if never materialised."""
    intervals = getattr(view, "materialization_intervals", None) or []
    ends = [end if end.tzinfo else end.replace(tzinfo=timezone.utc) for _, end in intervals]
    return max(ends) if ends else None


def _write(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _existing(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    df = pd.read_parquet(path)
    return df.sort_values(TS, kind="stable")


# --- pins ----------------------------------------------------------------------------------------------


@dataclass
class PinColumns:
    """Column names in the user's pins file."""

    id: str = "pin_id"
    text: str = "text"
    embedding: str = "embedding"
    model_version: str = "model_version"
    timestamp: str | None = None


def load_pins(path: Path, cols: PinColumns | None = None, dim: int | None = None,
              encoding: str = "utf-8") -> tuple[pd.DataFrame, int]:
    """Read and check a user's pins file -> (frame of pin_id, text, embedding, model_version[, ts],
    duplicates dropped). ``dim``: the length every embedding must have (None: the first one's)."""
    cols = cols or PinColumns()
    path = Path(path)
    wanted = [cols.id, cols.text, cols.embedding, cols.model_version] + ([cols.timestamp] if cols.timestamp else [])
    df = read_user_file(path, wanted, encoding)
    _require(df, path, cols.id, "--id-column")
    has_vec = cols.embedding in df.columns
    if cols.text not in df.columns and not has_vec:
        _require(df, path, cols.text, "--text-column")
    ids = df[cols.id].tolist()
    texts = df[cols.text].tolist() if cols.text in df.columns else [None] * len(df)
    raw_vecs = df[cols.embedding].tolist() if has_vec else [None] * len(df)
    mvs = df[cols.model_version].tolist() if cols.model_version in df.columns else [None] * len(df)
    out_ids, out_texts, out_vecs, out_mvs = [], [], [], []
    width = dim
    for row, (pid, text, raw, mv) in enumerate(zip(ids, texts, raw_vecs, mvs, strict=True), 1):
        if _blank(pid):
            raise IngestError(f"file {path}, column {cols.id!r}, row {row}: empty pin id")
        key = str(int(pid)) if isinstance(pid, (int, np.integer)) else str(pid).strip()
        vec = _vector(raw, path, cols.embedding, row) if has_vec else None
        if vec is None and _blank(text):
            raise IngestError(f"file {path}, row {row} (pin {key!r}): neither {cols.text!r} nor {cols.embedding!r}; "
                              "a pin needs its text (to embed) or its own vector")
        if vec is not None:
            if width is None:
                width = vec.size
            elif vec.size != width:
                where = "the feature view's vector_length" if dim is not None else "the file's first vector"
                raise IngestError(f"file {path}, column {cols.embedding!r}, row {row} (pin {key!r}): {vec.size} values, "
                                  f"but {where} is {width}")
        out_ids.append(key)
        out_texts.append("" if _blank(text) else str(text))
        out_vecs.append(vec)
        out_mvs.append(None if _blank(mv) else str(mv))
    frame = pd.DataFrame({"pin_id": out_ids, "text": out_texts, "embedding": out_vecs, "model_version": out_mvs})
    stamps = _timestamps(df, path, cols.timestamp)
    if stamps is not None:
        frame[TS] = stamps.to_numpy()
    before = len(frame)
    frame = frame.drop_duplicates("pin_id", keep="last").reset_index(drop=True)
    return frame, before - len(frame)


def _same_vec(a: Any, b: Any) -> bool:
    a_none, b_none = not isinstance(a, np.ndarray), not isinstance(b, np.ndarray)
    if a_none or b_none:
        return a_none and b_none
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _pins_table(df: pd.DataFrame) -> pa.Table:
    vecs = [None if not isinstance(v, np.ndarray) else v.astype(np.float32, copy=False) for v in df["embedding"]]
    columns = {"pin_id": pa.array(df["pin_id"].astype(str).tolist(), pa.string()),
               "text": pa.array(df["text"].astype(str).tolist(), pa.string())}
    if any(v is not None for v in vecs):
        columns["embedding"] = pa.array(vecs, pa.list_(pa.float32()))
    mvs = [v if isinstance(v, str) else None for v in df["model_version"]]
    if any(v is not None for v in mvs):
        columns["model_version"] = pa.array(mvs, pa.string())
    columns[TS] = pa.array(pd.to_datetime(df[TS], utc=True).astype("datetime64[us, UTC]"), pa.timestamp("us", tz="UTC"))
    return pa.table(columns)


def ingest_pins(repo: str | Path, path: str | Path, cols: PinColumns | None = None, dim: int | None = None,
                encoding: str = "utf-8") -> IngestReport:
    """Merge a user's pins file into ``repo/data/pins.parquet`` (see the module docstring)."""
    repo, path = Path(repo), Path(path)
    source = repo / PINS_FILE
    existing = _existing(source)
    if dim is None and existing is not None and "embedding" in existing.columns:
        dim = next((len(v) for v in existing["embedding"] if isinstance(v, np.ndarray) and len(v)), None)
    incoming, dups = load_pins(path, cols, dim, encoding)
    view = registry_view(repo, PIN_VIEW)
    last_end = last_materialised(view)
    report = IngestReport(source, "pins", duplicates=dups,
                          with_vectors=int(sum(isinstance(v, np.ndarray) for v in incoming["embedding"])))
    old: dict[str, tuple[Any, ...]] = {}
    if existing is not None:
        for col in ("embedding", "model_version"):
            if col not in existing.columns:
                existing[col] = None
        existing = existing.drop_duplicates("pin_id", keep="last")
        existing["embedding"] = [np.asarray(v, np.float32) if v is not None and len(v) else None
                                 for v in existing["embedding"]]
        old = {p: (t, v, m) for p, t, v, m in zip(existing["pin_id"], existing["text"], existing["embedding"],
                                                    existing["model_version"], strict=True)}
    keep = np.ones(len(incoming), dtype=bool)
    for i, (p, t, v, m) in enumerate(zip(incoming["pin_id"], incoming["text"], incoming["embedding"],
                                         incoming["model_version"], strict=True)):
        prev = old.get(p)
        if prev is None:
            report.new += 1
        elif prev[0] == t and _same_vec(prev[1], v) and (prev[2] or None) == m:
            report.unchanged += 1
            keep[i] = False
        else:
            report.changed += 1
    fresh = incoming[keep].copy()
    if not len(fresh):
        return report
    if TS not in fresh.columns:
        report.stamped = _stamp_now(last_end)
        fresh[TS] = pd.Series([report.stamped] * len(fresh), dtype="datetime64[us, UTC]", index=fresh.index)
    elif last_end is not None:
        report.older_than_materialised = int((fresh[TS] < last_end).sum())
    parts = [fresh[["pin_id", "text", "embedding", "model_version", TS]]]
    if existing is not None:
        parts.insert(0, existing[~existing["pin_id"].isin(set(fresh["pin_id"]))][["pin_id", "text", "embedding",
                                                                                   "model_version", TS]])
    _write(source, _pins_table(pd.concat(parts, ignore_index=True)))
    return report


# --- queries -------------------------------------------------------------------------------------------


def ingest_queries(repo: str | Path, path: str | Path, column: str = "query", timestamp_column: str | None = None,
                   encoding: str = "utf-8") -> IngestReport:
    """Add a user's queries (any file with a ``column`` of raw query text, e.g. a search log) to
    ``repo/data/queries.parquet``; a query is new when its normalised form (the entity key) is."""
    from encoders.normalize import normalize_query

    repo, path = Path(repo), Path(path)
    source = repo / QUERIES_FILE
    df = read_user_file(path, [column] + ([timestamp_column] if timestamp_column else []), encoding)
    _require(df, path, column, "--query-column")
    stamps = _timestamps(df, path, timestamp_column)
    existing = _existing(source)
    known = {normalize_query(str(q)) for q in existing["query"]} if existing is not None else set()
    report = IngestReport(source, "queries")
    rows: dict[str, tuple[str, Any]] = {}
    for row, q in enumerate(df[column].tolist(), 1):
        if q is None or (isinstance(q, float) and np.isnan(q)):
            report.skipped += 1
            continue
        key = normalize_query(str(q))
        if not key:
            report.skipped += 1
            continue
        if key in rows:
            report.duplicates += 1
        ts = stamps.iloc[row - 1] if stamps is not None else None
        rows[key] = (str(q), ts)
    fresh = {k: v for k, v in rows.items() if k not in known}
    report.new, report.unchanged = len(fresh), len(rows) - len(fresh)
    if not fresh:
        return report
    last_end = last_materialised(registry_view(repo, QUERY_VIEW))
    if stamps is None:
        report.stamped = _stamp_now(last_end)
        times = [report.stamped] * len(fresh)
    else:
        times = [v[1] for v in fresh.values()]
        if last_end is not None:
            report.older_than_materialised = sum(t < last_end for t in times)
    frame = pd.DataFrame({"query": [v[0] for v in fresh.values()],
                          TS: pd.Series(times, dtype="datetime64[us, UTC]")})
    if existing is not None:
        frame = pd.concat([existing[["query", TS]], frame], ignore_index=True)
    frame[TS] = pd.to_datetime(frame[TS], utc=True).astype("datetime64[us, UTC]")
    _write(source, pa.Table.from_pandas(frame, preserve_index=False))
    return report


# --- append-only helpers (tests, the demo) -------------------------------------------------------------


def _append(path: Path, frame: pd.DataFrame) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        frame = pd.concat([pd.read_parquet(path), frame], ignore_index=True)
    frame.to_parquet(path, index=False)
    return path


def _stamp(n: int, when: datetime | None) -> pd.Series:
    ts = when or datetime.now(timezone.utc)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return pd.Series([ts] * n, dtype="datetime64[us, UTC]")


def append_queries(repo: str | Path, queries: Sequence[str], when: datetime | None = None) -> Path:
    """Append raw queries with event time ``when`` (default now, UTC)."""
    frame = pd.DataFrame({"query": list(queries), TS: _stamp(len(queries), when)})
    return _append(Path(repo) / QUERIES_FILE, frame)


def append_pins(repo: str | Path, pin_ids: Sequence[str], texts: Sequence[str], when: datetime | None = None) -> Path:
    """Append pins (id + text) with event time ``when`` (default now, UTC)."""
    if len(pin_ids) != len(texts):
        raise ValueError(f"{len(pin_ids)} pin ids but {len(texts)} texts")
    frame = pd.DataFrame({"pin_id": [str(p) for p in pin_ids], "text": list(texts), TS: _stamp(len(texts), when)})
    return _append(Path(repo) / PINS_FILE, frame)
