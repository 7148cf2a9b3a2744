"""The student's training data: teacher labels, pin texts, and feature matrices without leakage.

Teacher labels (``searchsage relevance label``) are a parquet file with ``query: string``
(normalised), ``pin_id: string``, ``grade: float64`` (teacher), ``judged_grade: float64`` (human,
NaN when unjudged; optional) and ``split: string`` (``train`` / ``validation``). Eval-split rows are
refused: the student must never see a query it is reported on.

:func:`training_matrix` builds the features of every label row. Engagement statistics of ``train``
rows are out-of-fold (:func:`encoders.relevance.engagement_stats.out_of_fold_stats`), so a pair's
own engagement (its label, on Home Depot) is not among its features; ``validation`` rows read the
source's served statistics (train queries only), exactly what an unseen query gets online.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from encoders.data.schema import PINS, DatasetPaths, DataValidationError, read_table
from encoders.relevance.engagement_stats import EngagementStatsConfig, out_of_fold_stats, read_engagements
from encoders.relevance.features import (
    FeatureSource,
    ProductProjection,
    StudentFeaturizer,
    TextIndex,
    gather_inputs,
)
from encoders.relevance.pairs import GradeScale, split_of

LABEL_SPLITS = ("train", "validation")


@dataclass
class TeacherLabels:
    """Label rows: ``queries``/``pin_ids`` (N,) lists, ``grades (N,)`` teacher grades float64,
    ``judged (N,)`` human grades (NaN = unjudged), ``split (N,)`` object array of train/validation."""

    path: Path
    queries: list[str]
    pin_ids: list[str]
    grades: np.ndarray
    judged: np.ndarray
    split: np.ndarray

    def __len__(self) -> int:
        return len(self.queries)

    def scale(self) -> GradeScale:
        """The grade scale of the human grades (else of the teacher's), levels included."""
        known = self.judged[np.isfinite(self.judged)]
        try:
            return GradeScale.infer(known if np.unique(known).size >= 2 else self.grades)
        except ValueError as exc:
            raise DataValidationError(self.path, str(exc), column="grade") from None


def _column(table: pa.Table, name: str, path: Path, kind: str) -> np.ndarray:
    col = table.column(name)
    if kind == "string":
        if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            raise DataValidationError(path, f"expected strings, got {col.type}", column=name)
        values = np.asarray(col.to_pylist(), dtype=object)
        bad = np.flatnonzero([v is None or v == "" for v in values])
        if bad.size:
            raise DataValidationError(path, "empty or null value", column=name, row=int(bad[0]))
        return values
    if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
        raise DataValidationError(path, f"expected numbers, got {col.type}", column=name)
    return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def read_teacher_labels(path: str | Path, modulo: int = 10) -> TeacherLabels:
    """Read and check a teacher-label parquet file; errors name the file, column and row."""
    path = Path(path)
    if not path.is_file():
        raise DataValidationError(path, "file not found (teacher labels: write them with `searchsage relevance label`)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataValidationError(path, f"not a readable parquet file: {exc}") from None
    for name in ("query", "pin_id", "grade", "split"):
        if name not in table.column_names:
            raise DataValidationError(path, f"missing required column; found {table.column_names}", column=name)
    if table.num_rows == 0:
        raise DataValidationError(path, "holds no rows")
    queries = _column(table, "query", path, "string")
    pin_ids = _column(table, "pin_id", path, "string")
    split = _column(table, "split", path, "string")
    grades = _column(table, "grade", path, "number")
    bad = np.flatnonzero(~np.isfinite(grades))
    if bad.size:
        raise DataValidationError(path, f"teacher grade must be finite, got {grades[bad[0]]}", column="grade",
                                  row=int(bad[0]))
    judged = (_column(table, "judged_grade", path, "number") if "judged_grade" in table.column_names
              else np.full(len(grades), np.nan))
    bad = np.flatnonzero(~np.isin(split, LABEL_SPLITS))
    if bad.size:
        why = (" — eval queries are held out for reporting, the student must not train or choose on them"
               if split[bad[0]] == "eval" else "")
        raise DataValidationError(path, f"split {split[bad[0]]!r} is not one of {LABEL_SPLITS}{why}",
                                  column="split", row=int(bad[0]))
    uniq, inverse = np.unique(queries.astype(str), return_inverse=True)
    expected = np.asarray([split_of(q, modulo) for q in uniq], dtype=object)[inverse]
    bad = np.flatnonzero(expected != split)
    if bad.size:
        r = int(bad[0])
        raise DataValidationError(path, f"query {queries[r]!r} is labelled {split[r]!r} but belongs to the "
                                  f"{expected[r]!r} split (encoders.relevance.pairs.split_of)", column="split", row=r)
    if not (split == "train").any():
        raise DataValidationError(path, "no train-split rows to fit the student on", column="split")
    return TeacherLabels(path, queries.tolist(), pin_ids.tolist(), grades, judged, split)


def dataset_pin_texts(dataset_dir: str | Path) -> dict[str, str]:
    """``pin_id → text`` of a dataset's ``pins.parquet`` (validated)."""
    pins = read_table(DatasetPaths(Path(dataset_dir)).pins, PINS, columns=None).select(["pin_id", "text"])
    return dict(zip(pins.column("pin_id").to_pylist(), pins.column("text").to_pylist(), strict=True))


def label_texts(labels: TeacherLabels, texts: dict[str, str], pins_path: Path) -> list[str]:
    """Text of each label row's pin; a pin missing from the dataset names the label row."""
    out = []
    for row, pid in enumerate(labels.pin_ids):
        text = texts.get(pid)
        if text is None:
            raise DataValidationError(labels.path, f"pin_id {pid!r} is not in {pins_path}", column="pin_id", row=row)
        out.append(text)
    return out


@dataclass
class TrainingMatrix:
    """Features ``x (N, F)`` float32 of the label rows, their ``featurizer``, and which rows are train."""

    x: np.ndarray
    featurizer: StudentFeaturizer
    train: np.ndarray
    feature_names: list[str]


def training_matrix(labels: TeacherLabels, dataset_dir: str | Path, source: FeatureSource,
                    stats_config: EngagementStatsConfig | None = None, projection_dims: int = 8,
                    seed: int = 0) -> TrainingMatrix:
    """Fit the featurizer on training rows and compute every label row's features.

    BM25 statistics span all pins of the dataset; the ``q ⊙ p`` projection is fitted on train rows;
    train rows get out-of-fold engagement statistics, validation rows the source's served ones.
    """
    stats_config = stats_config or EngagementStatsConfig()
    dataset_dir = Path(dataset_dir)
    all_texts = dataset_pin_texts(dataset_dir)
    texts = label_texts(labels, all_texts, DatasetPaths(dataset_dir).pins)
    train = labels.split == "train"
    tr = np.flatnonzero(train)
    inputs = gather_inputs(source, labels.queries, labels.pin_ids)
    oof = out_of_fold_stats(read_engagements(dataset_dir), [labels.queries[i] for i in tr],
                            [labels.pin_ids[i] for i in tr], stats_config)
    inputs.stats[tr] = oof
    fit_rows = tr[inputs.pin_found[inputs.pi[tr]]]
    if fit_rows.size == 0:
        raise DataValidationError(labels.path, "no train row has a pin vector in the feature source", column="pin_id")
    rng = np.random.default_rng(seed)
    if fit_rows.size > 50_000:
        fit_rows = np.sort(rng.choice(fit_rows, 50_000, replace=False))
    projection = ProductProjection.fit(inputs.query_vectors[inputs.qi[fit_rows]],
                                       inputs.pin_vectors[inputs.pi[fit_rows]], k=projection_dims)
    featurizer = StudentFeaturizer(TextIndex.fit(list(all_texts.values())), projection)
    x = featurizer.matrix(inputs, labels.queries, texts)
    return TrainingMatrix(x, featurizer, train, featurizer.feature_names)
