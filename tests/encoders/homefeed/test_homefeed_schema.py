"""Events / interests tables: canonical types, and errors that name the file, the column and the row."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest

from encoders.data.schema import DataValidationError
from encoders.homefeed.schema import (
    EVENTS,
    USER_INTERESTS,
    read_homefeed_table,
    validate_homefeed_table,
    write_homefeed_table,
)

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _events(**override: list) -> pa.Table:
    cols = {"user_id": ["u1", "u1", "u2"], "pin_id": ["p1", "p2", "p1"], "action": ["click", "save", "hide"],
            "timestamp": pa.array([T0, T0, T0], pa.timestamp("us", tz="UTC"))}
    cols.update(override)
    return pa.table(cols)


def test_valid_events_are_cast_to_the_canonical_schema(tmp_path: Path) -> None:
    raw = _events(timestamp=pa.array([T0, T0, T0], pa.timestamp("ms", tz="UTC")))
    path = write_homefeed_table(raw.select(["action", "timestamp", "pin_id", "user_id"]), tmp_path / "e.parquet", EVENTS)
    table = read_homefeed_table(path, EVENTS)
    assert table.column_names == ["user_id", "pin_id", "action", "timestamp"]
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")


@pytest.mark.parametrize(("override", "column", "row", "words"), [
    ({"action": ["click", "like", "save"]}, "action", 1, "unknown action 'like'"),
    ({"user_id": ["u1", None, "u2"]}, "user_id", 1, "null"),
    ({"pin_id": ["p1", "p2", ""]}, "pin_id", 2, "non-empty"),
])
def test_bad_values_name_file_column_and_row(override: dict, column: str, row: int, words: str) -> None:
    with pytest.raises(DataValidationError) as exc:
        validate_homefeed_table(_events(**override), EVENTS, "events.parquet")
    err = exc.value
    assert (err.file, err.column, err.row) == ("events.parquet", column, row)
    assert words in str(err)


def test_missing_column_and_unknown_pin(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"column 'action'.*missing required column"):
        validate_homefeed_table(_events().drop_columns(["action"]), EVENTS, "e.parquet")
    with pytest.raises(DataValidationError, match=r"row 1.*'p2' is not in pins\.parquet"):
        validate_homefeed_table(_events(), EVENTS, "e.parquet", pin_ids=pa.array(["p1"]))
    with pytest.raises(DataValidationError, match="file not found"):
        read_homefeed_table(tmp_path / "none.parquet", USER_INTERESTS)
    with pytest.raises(DataValidationError, match="cannot be read as timestamp"):
        validate_homefeed_table(_events(timestamp=["yesterday"] * 3), EVENTS, "e.parquet")
