"""Whole-directory checks of a dataset: every table against its schema, plus the links between them.

:func:`check_dataset` raises :class:`~encoders.data.schema.DataValidationError` (naming file,
column and row) on the first problem, and otherwise returns a short summary (one line per fact).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from encoders.data.schema import (
    ENGAGEMENTS,
    JUDGMENTS,
    PINS,
    DatasetPaths,
    DataValidationError,
    read_table,
)
from encoders.data.split import is_eval_query


@dataclass(frozen=True)
class DatasetSummary:
    """Counts of a valid dataset directory."""

    pins: int
    embedding_dim: int | None
    engagements: int
    engagements_by_task: dict[str, int]
    judgments: int
    distinct_queries: int
    eval_queries: int
    eval_positive_pairs: int

    def lines(self) -> list[str]:
        emb = f"embeddings D={self.embedding_dim}" if self.embedding_dim else "no embeddings yet"
        tasks = ", ".join(f"{k} {v:,}" for k, v in sorted(self.engagements_by_task.items()))
        return [
            f"pins:        {self.pins:,} ({emb})",
            f"engagements: {self.engagements:,} ({tasks})",
            f"judgments:   {self.judgments:,}",
            f"queries:     {self.distinct_queries:,} distinct; {self.eval_queries:,} eval queries "
            f"(md5 split), {self.eval_positive_pairs:,} distinct eval (query, pin) engagement pairs",
        ]


def _check_links(ids: set[str], table_pin_ids: list[str], file: Path) -> None:
    for row, pid in enumerate(table_pin_ids):
        if pid not in ids:
            raise DataValidationError(file, f"pin_id {pid!r} is not in pins.parquet", column="pin_id", row=row)


def summarize_dataset(dataset_dir: str | Path) -> DatasetSummary:
    """Validate all three tables and the pin links; return their counts."""
    paths = DatasetPaths(Path(dataset_dir))
    if not paths.root.is_dir():
        raise DataValidationError(paths.root, "dataset directory not found")
    pins = read_table(paths.pins, PINS)
    eng = read_table(paths.engagements, ENGAGEMENTS)
    judg = read_table(paths.judgments, JUDGMENTS)
    ids = set(pins.column("pin_id").to_pylist())
    _check_links(ids, eng.column("pin_id").to_pylist(), paths.engagements)
    _check_links(ids, judg.column("pin_id").to_pylist(), paths.judgments)
    dim = len(pins.column("embedding")[0]) if "embedding" in pins.column_names and pins.num_rows else None
    tasks = pc.value_counts(eng.column("task")).to_pylist()
    queries = sorted(set(eng.column("query").to_pylist()) | set(judg.column("query").to_pylist()))
    eval_set = {q for q in queries if is_eval_query(q)}
    eq = np.asarray(eng.column("query").to_pylist(), dtype=object)
    ep = eng.column("pin_id").to_pylist()
    pairs = {(q, p) for q, p in zip(eq, ep, strict=True) if q in eval_set}
    return DatasetSummary(
        pins=pins.num_rows, embedding_dim=dim, engagements=eng.num_rows,
        engagements_by_task={t["values"]: t["counts"] for t in tasks}, judgments=judg.num_rows,
        distinct_queries=len(queries), eval_queries=len(eval_set), eval_positive_pairs=len(pairs),
    )


def check_dataset(dataset_dir: str | Path) -> list[str]:
    """Validate a dataset directory; the summary as printable lines."""
    return summarize_dataset(dataset_dir).lines()
