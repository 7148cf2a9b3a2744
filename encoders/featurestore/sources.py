"""Append raw rows to the repository's parquet sources (what ``materialize-incremental`` picks up).

``data/queries.parquet``: ``query`` (raw text), ``event_timestamp`` (UTC).
``data/pins.parquet``: ``pin_id``, ``text``, ``event_timestamp`` (UTC).
Appending rewrites the file (fine for development-sized sources); production sources are
partitioned parquet written by the logging pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

QUERIES_FILE = "data/queries.parquet"
PINS_FILE = "data/pins.parquet"


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
    frame = pd.DataFrame({"query": list(queries), "event_timestamp": _stamp(len(queries), when)})
    return _append(Path(repo) / QUERIES_FILE, frame)


def append_pins(repo: str | Path, pin_ids: Sequence[str], texts: Sequence[str], when: datetime | None = None) -> Path:
    """Append pins (id + text) with event time ``when`` (default now, UTC)."""
    if len(pin_ids) != len(texts):
        raise ValueError(f"{len(pin_ids)} pin ids but {len(texts)} texts")
    frame = pd.DataFrame({"pin_id": [str(p) for p in pin_ids], "text": list(texts),
                          "event_timestamp": _stamp(len(texts), when)})
    return _append(Path(repo) / PINS_FILE, frame)
