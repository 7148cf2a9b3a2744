"""Import the Kaggle "Home Depot Product Search Relevance" ``train.csv`` as a SearchSage dataset.

The file (74,067 rows, latin-1 encoded, columns ``id, product_uid, product_title, search_term,
relevance``) is read in chunks and never copied. It becomes:

* **pins** — one per distinct ``product_uid``: ``pin_id = str(product_uid)``, ``text`` = title
  (the first title seen for that product).
* **engagements** — every pair with ``relevance >= positive_threshold`` (default 2.67, i.e. at least
  two of three raters said "highly relevant"): ``task="shopping"``, ``action="long_click"`` (a
  product page that a rater judged a clear match stands in for a long click-through), timestamp
  ``2016-01-01T00:00:00Z + id`` seconds (deterministic, ordered like the file).
* **judgments** — every pair, ``grade = relevance`` (1..3). The file holds a handful of repeated
  (query, product) pairs after normalisation; they are merged into one judgment with the mean grade.

Queries are normalised with :func:`encoders.normalize.normalize_query`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa

from encoders.data.pin_embeddings import write_pins
from encoders.data.schema import (
    ENGAGEMENTS,
    JUDGMENTS,
    TIMESTAMP,
    DatasetPaths,
    DataValidationError,
    write_table,
)
from encoders.normalize import normalize_query

REQUIRED_COLUMNS = ("id", "product_uid", "product_title", "search_term", "relevance")
EPOCH = datetime(2016, 1, 1, tzinfo=timezone.utc)
POSITIVE_THRESHOLD = 2.67


class HomeDepotFormatError(DataValidationError):
    """The CSV is not in the Kaggle Home Depot ``train.csv`` format (names file, column, row)."""


@dataclass(frozen=True)
class HomeDepotStats:
    """Counts of one import (written to ``dataset.json`` beside the tables)."""

    source: str
    rows: int
    pins: int
    engagements: int
    judgments: int
    distinct_queries: int
    positive_threshold: float


def _read_chunks(csv_path: Path, encoding: str, chunksize: int) -> Iterator[pd.DataFrame]:
    """Yield raw string chunks; decoding/parsing problems become :class:`HomeDepotFormatError`."""
    try:
        reader = pd.read_csv(
            csv_path, encoding=encoding, dtype=str, keep_default_na=False, chunksize=chunksize
        )
        with reader:
            first = True
            for chunk in reader:
                if first:
                    missing = [c for c in REQUIRED_COLUMNS if c not in chunk.columns]
                    if missing:
                        raise HomeDepotFormatError(
                            csv_path,
                            f"missing required column(s) {missing}; expected {list(REQUIRED_COLUMNS)}, "
                            f"found {list(chunk.columns)}",
                            column=missing[0],
                        )
                    first = False
                yield chunk
    except UnicodeDecodeError as exc:
        raise HomeDepotFormatError(
            csv_path,
            f"cannot be decoded as {encoding} (byte 0x{exc.object[exc.start]:02X} at offset {exc.start} of a "
            f"read block); the Kaggle file is latin-1 encoded: use encoding='latin-1'",
        ) from None
    except pd.errors.EmptyDataError:
        raise HomeDepotFormatError(csv_path, f"is empty; expected a CSV with columns {list(REQUIRED_COLUMNS)}") from None
    except pd.errors.ParserError as exc:
        raise HomeDepotFormatError(csv_path, f"is not a well-formed CSV: {exc}") from None


def _check_chunk(chunk: pd.DataFrame, first_row: int, csv_path: Path) -> pd.DataFrame:
    """Parse one chunk; ``first_row`` is the 1-based data-row number of its first row (header = row 0)."""
    for col in ("product_uid", "product_title", "search_term"):
        empty = chunk[col].str.strip() == ""
        if empty.any():
            i = int(empty.to_numpy().argmax())
            raise HomeDepotFormatError(csv_path, "is empty; a value is required", column=col, row=first_row + i)
    rel = pd.to_numeric(chunk["relevance"], errors="coerce")
    bad = rel.isna() | (rel < 1) | (rel > 3)
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise HomeDepotFormatError(
            csv_path,
            f"expected a number between 1 and 3, found {chunk['relevance'].iloc[i]!r} "
            f"(data row {first_row + i}, id {chunk['id'].iloc[i]!r})",
            column="relevance", row=first_row + i,
        )
    ids = pd.to_numeric(chunk["id"], errors="coerce")
    if ids.isna().any():
        i = int(ids.isna().to_numpy().argmax())
        raise HomeDepotFormatError(
            csv_path, f"expected an integer id, found {chunk['id'].iloc[i]!r}", column="id", row=first_row + i
        )
    return pd.DataFrame(
        {
            "id": ids.astype("int64"),
            "pin_id": chunk["product_uid"].str.strip(),
            "title": chunk["product_title"].str.strip(),
            "query": [normalize_query(q) for q in chunk["search_term"]],
            "relevance": rel.astype("float64"),
        }
    )


def import_homedepot(
    csv_path: str | Path,
    out_dir: str | Path,
    encoding: str = "latin-1",
    positive_threshold: float = POSITIVE_THRESHOLD,
    chunksize: int = 20_000,
) -> DatasetPaths:
    """Read ``csv_path`` (Kaggle Home Depot ``train.csv``) and write a dataset directory ``out_dir``.

    Row numbers in errors are 1-based data rows (the header is row 0). Raises
    :class:`HomeDepotFormatError` for a missing file, missing column, empty field, a relevance that
    is not a number in 1..3, or bytes that cannot be decoded with ``encoding``.
    """
    csv_path, out = Path(csv_path), DatasetPaths(Path(out_dir))
    if not csv_path.is_file():
        raise HomeDepotFormatError(
            csv_path, "file not found; expected the Kaggle Home Depot train.csv (see docs/data.md)"
        )
    titles: dict[str, str] = {}
    parts: list[pd.DataFrame] = []
    first_row = 1
    for chunk in _read_chunks(csv_path, encoding, chunksize):
        df = _check_chunk(chunk, first_row, csv_path)
        first_row += len(df)
        for pid, title in zip(df["pin_id"], df["title"], strict=True):
            titles.setdefault(pid, title)
        parts.append(df[["id", "query", "pin_id", "relevance"]])
    if not parts:
        raise HomeDepotFormatError(csv_path, "holds a header but no data rows")
    pairs = pd.concat(parts, ignore_index=True)

    pins = pa.table({"pin_id": list(titles), "text": list(titles.values())})
    pos = pairs[pairs["relevance"] >= positive_threshold - 1e-9]
    ts = pd.to_datetime(EPOCH) + pd.to_timedelta(pos["id"].to_numpy(), unit="s")
    engagements = pa.table(
        {
            "query": pa.array(pos["query"], pa.string()),
            "pin_id": pa.array(pos["pin_id"], pa.string()),
            "task": pa.array(["shopping"] * len(pos), pa.string()),
            "action": pa.array(["long_click"] * len(pos), pa.string()),
            "timestamp": pa.array(ts, TIMESTAMP),
        }
    )
    judged = pairs.groupby(["query", "pin_id"], sort=False, as_index=False)["relevance"].mean()
    judgments = pa.table(
        {
            "query": pa.array(judged["query"], pa.string()),
            "pin_id": pa.array(judged["pin_id"], pa.string()),
            "grade": pa.array(judged["relevance"], pa.float64()),
        }
    )
    write_pins(out, pins)
    write_table(engagements, out.engagements, ENGAGEMENTS)
    write_table(judgments, out.judgments, JUDGMENTS)
    stats = HomeDepotStats(
        source=str(csv_path.resolve()), rows=len(pairs), pins=pins.num_rows, engagements=engagements.num_rows,
        judgments=judgments.num_rows, distinct_queries=int(pairs["query"].nunique()),
        positive_threshold=positive_threshold,
    )
    (out.root / "dataset.json").write_text(json.dumps({"kind": "homedepot", **asdict(stats)}, indent=2))
    return out


def read_stats(dataset_dir: str | Path) -> dict[str, object]:
    """The ``dataset.json`` written by an importer/generator (empty dict when there is none)."""
    p = Path(dataset_dir) / "dataset.json"
    return json.loads(p.read_text()) if p.exists() else {}
