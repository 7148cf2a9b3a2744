"""Model labels for an experiment: a relevance model's grade for every result an arm served.

``served.parquet`` (``arm, query, pin_ids``) lists what each arm showed; every distinct
(query, pin_id) is graded once by a scorer ``(queries, pin_ids, texts) -> (N,) grades`` — the
distilled student (:class:`encoders.relevance.student.StudentScorer`, reading its features through
Feast) or the teacher — with pin texts from the dataset's ``pins.parquet``. The output has the
judgments' schema (``query, pin_id, grade``), which ``abtest analyze --model-labels`` combines with a
judged sample by prediction-powered inference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa

from abtest.simulate.rankings import read_served
from encoders.data.schema import JUDGMENTS, PINS, DataValidationError, read_table, write_table

Scorer = Callable[[Sequence[str], Sequence[str], Sequence[str]], np.ndarray]
CHUNK = 8192


def served_pairs(served_path: str | Path) -> tuple[list[str], list[str]]:
    """The distinct (query, pin_id) pairs any arm served, in first-seen order → two lists."""
    seen: dict[tuple[str, str], None] = {}
    for rankings in read_served(served_path).values():
        for query, pins in rankings.items():
            for pin in pins:
                seen.setdefault((query, pin), None)
    return [q for q, _ in seen], [p for _, p in seen]


def label_served(served_path: str | Path, pins_path: str | Path, scorer: Scorer, out: str | Path,
                 progress: bool = True) -> pa.Table:
    """Grade every served (query, pin) with ``scorer`` and write ``out`` (judgments schema)."""
    from tqdm.auto import tqdm

    queries, pin_ids = served_pairs(served_path)
    pins = read_table(pins_path, PINS, columns=["pin_id", "text"])
    text_of = dict(zip(pins.column("pin_id").to_pylist(), pins.column("text").to_pylist(), strict=True))
    missing = next((p for p in pin_ids if p not in text_of), None)
    if missing is not None:
        raise DataValidationError(served_path, f"served pin_id {missing!r} is not in {pins_path}", column="pin_ids")
    texts = [text_of[p] for p in pin_ids]
    grades = np.zeros(len(queries), dtype=np.float64)
    for s in tqdm(range(0, len(queries), CHUNK), desc="model labels", unit="chunk", disable=not progress):
        grades[s : s + CHUNK] = scorer(queries[s : s + CHUNK], pin_ids[s : s + CHUNK], texts[s : s + CHUNK])
    table = pa.table({"query": pa.array(queries, pa.string()), "pin_id": pa.array(pin_ids, pa.string()),
                      "grade": pa.array(grades, pa.float64())})
    write_table(table, out, JUDGMENTS)
    return table
