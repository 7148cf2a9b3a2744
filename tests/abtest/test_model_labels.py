"""Model labels for served results: every distinct served (query, pin) graded once, judgments schema."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abtest.model_labels import label_served, served_pairs
from encoders.data.schema import JUDGMENTS, PINS, DataValidationError, read_table, write_table


def _write(tmp_path: Path, served_pins: list[list[str]]) -> tuple[Path, Path]:
    served = tmp_path / "served.parquet"
    pq.write_table(pa.table({"arm": ["control", "treatment", "control"], "query": ["oak", "oak", "lamp"],
                             "pin_ids": served_pins}), served)
    pins = write_table(pa.table({"pin_id": ["1", "2", "3"], "text": ["oak table", "oak chair", "desk lamp"]}),
                       tmp_path / "pins.parquet", PINS)
    return served, pins


def test_every_distinct_served_pair_is_graded_once(tmp_path: Path) -> None:
    served, pins = _write(tmp_path, [["1", "2"], ["2", "3"], ["3"]])
    # arm by arm (control: oak 1 2, lamp 3; treatment: oak 2 3), each pair once
    assert served_pairs(served) == (["oak", "oak", "lamp", "oak"], ["1", "2", "3", "3"])
    calls = []

    def scorer(queries, pin_ids, texts):  # grade 3 when the query word is in the text, else 1
        calls.append(len(queries))
        return np.array([3.0 if q in t else 1.0 for q, t in zip(queries, texts, strict=True)])

    table = label_served(served, pins, scorer, tmp_path / "model_labels.parquet", progress=False)
    assert calls == [4]
    back = read_table(tmp_path / "model_labels.parquet", JUDGMENTS)
    assert back.to_pydict() == {"query": ["oak", "oak", "lamp", "oak"], "pin_id": ["1", "2", "3", "3"],
                                "grade": [3.0, 3.0, 3.0, 1.0]}
    assert table.num_rows == 4


def test_a_served_pin_without_text_is_named(tmp_path: Path) -> None:
    served, pins = _write(tmp_path, [["1", "9"], ["2"], ["3"]])
    with pytest.raises(DataValidationError, match="served pin_id '9' is not in"):
        label_served(served, pins, lambda q, p, t: np.ones(len(q)), tmp_path / "m.parquet", progress=False)
