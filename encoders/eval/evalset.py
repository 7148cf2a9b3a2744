"""The held-out evaluation set of a dataset directory: queries, (query, pin) pairs, judgments, index.

Built from the dataset contract of ``docs/architecture.md``:

* eval queries are the queries of ``engagements.parquet`` / ``judgments.parquet`` for which
  :func:`encoders.data.split.is_eval_query` is true (the same rule training uses to hold them out);
* pairs are the distinct (query, pin) engagements of eval queries (overall), and the distinct
  pairs within each ``task`` (per-task breakdown);
* judgments of eval queries give nDCG / P@k; judged pins missing from the pin table are dropped;
* the index is all pins, or a seeded random sample that always holds every eval positive and
  every judged pin of an eval query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from encoders.data.schema import ENGAGEMENTS, JUDGMENTS, PINS, DatasetPaths, pin_embedding_matrix, read_table
from encoders.data.split import is_eval_query
from encoders.eval.retrieval import sample_index


class EvalInputError(ValueError):
    """The inputs of an evaluation are missing or unusable (names the file and what was expected)."""


@dataclass
class EvalSet:
    """Everything the metrics need, as row numbers into ``pins`` and ``queries``.

    ``pair_query (P,)``/``pair_pin (P,)``: query row and **index position** of each distinct
    eval pair; ``task_pairs[task] = (pair_query, pair_pin)`` likewise per task.
    ``judged[qi]``: ``{pin_id: grade}`` of query row ``qi`` (only judged eval queries appear).
    ``index_rows (N_index,)``: rows of the pin table that form the index, ascending.
    """

    root: Path
    pins: pa.Table
    queries: list[str]
    pair_query: np.ndarray
    pair_pin: np.ndarray
    task_pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    judged: dict[int, dict[str, float]]
    index_rows: np.ndarray
    metadata: dict[str, object] = field(default_factory=dict)

    @property
    def index_pin_ids(self) -> list[str]:
        ids = self.pins.column("pin_id").to_pylist()
        return [ids[i] for i in self.index_rows]

    @property
    def index_texts(self) -> list[str]:
        texts = self.pins.column("text").to_pylist()
        return [texts[i] for i in self.index_rows]

    @property
    def has_embeddings(self) -> bool:
        return "embedding" in self.pins.column_names

    def index_embeddings(self) -> np.ndarray:
        """The frozen pin embeddings of the index rows → ``(N_index, D)`` float32."""
        if not self.has_embeddings:
            raise EvalInputError(
                f"file {DatasetPaths(self.root).pins}: no 'embedding' column; this system needs the frozen "
                "pin embeddings (create them with the pin tower first, e.g. `searchsage pins embed`)"
            )
        return pin_embedding_matrix(self.pins.take(pa.array(self.index_rows)))


def _distinct_pairs(queries: list[str], pins: list[str], keep: np.ndarray) -> list[tuple[str, str]]:
    return list(dict.fromkeys((q, p) for q, p, k in zip(queries, pins, keep, strict=True) if k))


def load_eval_set(
    dataset_dir: str | Path, index_size: int | None = None, seed: int = 0, split_modulo: int = 10
) -> EvalSet:
    """Read a dataset directory and build its :class:`EvalSet` (clear errors for missing parts)."""
    root = Path(dataset_dir)
    if not root.is_dir():
        raise EvalInputError(f"dataset directory {root} does not exist (expected pins/engagements parquet files)")
    paths = DatasetPaths(root)
    pins = read_table(paths.pins, PINS)
    eng = read_table(paths.engagements, ENGAGEMENTS)
    row_of = {pid: i for i, pid in enumerate(pins.column("pin_id").to_pylist())}

    eq, ep, et = (eng.column(c).to_pylist() for c in ("query", "pin_id", "task"))
    split = {q: is_eval_query(q, split_modulo) for q in set(eq)}
    is_eval = np.fromiter((split[q] for q in eq), dtype=bool, count=len(eq))
    unknown = [p for p, k in zip(ep, is_eval, strict=True) if k and p not in row_of]
    if unknown:
        raise EvalInputError(f"file {paths.engagements}: pin_id {unknown[0]!r} is not in {paths.pins}")
    pairs = _distinct_pairs(eq, ep, is_eval)

    judged_by_q: dict[str, dict[str, float]] = {}
    if paths.judgments.exists():
        jt = read_table(paths.judgments, JUDGMENTS)
        for q, p, g in zip(*(jt.column(c).to_pylist() for c in ("query", "pin_id", "grade")), strict=True):
            if p in row_of and is_eval_query(q, split_modulo):
                judged_by_q.setdefault(q, {})[p] = float(g)
    if not pairs and not judged_by_q:
        raise EvalInputError(
            f"file {paths.engagements}: no engagement or judgment of an evaluation query "
            f"(md5(query) % {split_modulo} == 0); the dataset is too small to evaluate"
        )

    queries = sorted({q for q, _ in pairs} | set(judged_by_q))
    qrow = {q: i for i, q in enumerate(queries)}
    must = [row_of[p] for _, p in pairs] + [row_of[p] for d in judged_by_q.values() for p in d]
    try:
        index_rows = sample_index(pins.num_rows, np.asarray(must, dtype=np.int64), index_size, seed)
    except ValueError as exc:
        raise EvalInputError(str(exc)) from None
    pos_of = np.full(pins.num_rows, -1, dtype=np.int64)
    pos_of[index_rows] = np.arange(index_rows.size)

    def as_arrays(ps: list[tuple[str, str]]) -> tuple[np.ndarray, np.ndarray]:
        return (
            np.asarray([qrow[q] for q, _ in ps], dtype=np.int64),
            np.asarray([pos_of[row_of[p]] for _, p in ps], dtype=np.int64),
        )

    pq_, pp_ = as_arrays(pairs)
    task_pairs = {}
    for task in sorted(set(t for t, k in zip(et, is_eval, strict=True) if k)):
        in_task = is_eval & np.fromiter((t == task for t in et), dtype=bool, count=len(et))
        task_pairs[task] = as_arrays(_distinct_pairs(eq, ep, in_task))
    meta_path = root / "dataset.json"
    metadata = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return EvalSet(
        root=root, pins=pins, queries=queries, pair_query=pq_, pair_pin=pp_, task_pairs=task_pairs,
        judged={qrow[q]: d for q, d in judged_by_q.items()}, index_rows=index_rows, metadata=metadata,
    )
