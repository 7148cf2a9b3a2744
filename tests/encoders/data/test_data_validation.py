"""Schema and whole-dataset validation errors name the file, the column and the row."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.data.dataset_check import summarize_dataset
from encoders.data.schema import DataValidationError, read_table

PINS = {"pin_id": ["a", "b", "c"], "text": ["red chair", "oak table", "lamp"]}


def write(path: Path, data: dict) -> Path:
    pq.write_table(pa.table(data), path)
    return path


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    p = write(tmp_path / "pins.parquet", {"pin_id": ["a"]})
    with pytest.raises(DataValidationError, match=r"pins\.parquet, column 'text': missing required column"):
        read_table(p, "pins")


def test_null_names_row(tmp_path: Path) -> None:
    p = write(tmp_path / "pins.parquet", {"pin_id": ["a", "b", "c"], "text": ["x", None, "z"]})
    with pytest.raises(DataValidationError, match=r"column 'text', row 1: is empty \(null\)") as err:
        read_table(p, "pins")
    assert (err.value.column, err.value.row) == ("text", 1)


def test_duplicate_pin_id_names_first_row(tmp_path: Path) -> None:
    p = write(tmp_path / "pins.parquet", {"pin_id": ["a", "b", "b"], "text": ["x", "y", "z"]})
    with pytest.raises(DataValidationError, match=r"column 'pin_id', row 1: pin_id must be unique; 'b'"):
        read_table(p, "pins")


def test_ragged_embeddings_name_row_and_lengths(tmp_path: Path) -> None:
    emb = pa.array([[0.1, 0.2], [0.3, 0.4], [0.5]], pa.list_(pa.float32()))
    p = write(tmp_path / "pins.parquet", {**PINS, "embedding": emb})
    with pytest.raises(DataValidationError, match=r"column 'embedding', row 2: .*same length 2, found 1"):
        read_table(p, "pins")


def _dataset(tmp_path: Path, engaged_pin: str) -> Path:
    write(tmp_path / "pins.parquet", PINS)
    ts = pa.array([0], pa.timestamp("us", tz="UTC"))
    write(tmp_path / "engagements.parquet", {"query": ["chair"], "pin_id": [engaged_pin], "task": ["organic"],
                                             "action": ["save"], "timestamp": ts})
    write(tmp_path / "judgments.parquet", {"query": ["chair"], "pin_id": ["a"], "grade": [3.0]})
    return tmp_path


def test_dataset_check_finds_dangling_engagement(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"engagements\.parquet, column 'pin_id', row 0: pin_id 'zz'"):
        summarize_dataset(_dataset(tmp_path, "zz"))


def test_dataset_check_summary(tmp_path: Path) -> None:
    s = summarize_dataset(_dataset(tmp_path, "a"))
    assert (s.pins, s.engagements, s.judgments, s.distinct_queries, s.embedding_dim) == (3, 1, 1, 1, None)
    assert s.engagements_by_task == {"organic": 1}
