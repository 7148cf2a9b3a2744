"""Judged (query, pin, text, grade) pairs of a dataset, their grade scale and their query split.

The split is the tower's (:mod:`encoders.data.split`): ``eval`` = ``md5(query) % 10 == 0``,
``validation`` = ``% 10 == 1``, ``train`` = the rest. A relevance model is trained on ``train``,
its settings and calibration are chosen on ``validation``, and it is reported on ``eval``, so the
relevance numbers and the retrieval numbers hold out the same queries.

The **grade scale** is ``[lowest, highest]`` of the judgments (Home Depot: means of three raters on
1–3; a 5-point scale; the synthetic 1/2/3). A declared scale (``--grade-scale LO:HI``) must contain
every grade, else :class:`GradeScaleError` names the file, the row and the grade.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from encoders.data.schema import JUDGMENTS, PINS, DatasetPaths, DataValidationError, read_table
from encoders.data.split import is_eval_query, is_validation_query

SPLITS: tuple[str, ...] = ("train", "validation", "eval")


class GradeScaleError(DataValidationError):
    """Judgments fall outside the declared grade scale, or the scale is degenerate."""


@dataclass(frozen=True)
class GradeScale:
    """The grade range ``[lowest, highest]`` and, when the grades take few values, those levels.

    ``levels``: the distinct grades when there are at most 11 of them (a discrete scale such as
    1/2/3 or 1..5), else ``None`` (a continuous scale such as Home Depot's rater means).
    """

    lowest: float
    highest: float
    levels: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.lowest) and np.isfinite(self.highest)) or self.highest <= self.lowest:
            raise ValueError(f"grade scale needs lowest < highest, got {self.lowest}:{self.highest}")

    @property
    def span(self) -> float:
        return self.highest - self.lowest

    def to_unit(self, grades: np.ndarray) -> np.ndarray:
        """Grades → ``[0, 1]`` (lowest → 0, highest → 1), same shape."""
        return (np.asarray(grades, dtype=np.float64) - self.lowest) / self.span

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        """``[0, 1]`` → grades, same shape (clipped to the scale)."""
        return self.lowest + np.clip(np.asarray(unit, dtype=np.float64), 0.0, 1.0) * self.span

    def nearest_level(self, grades: np.ndarray) -> np.ndarray:
        """Each grade rounded to the nearest level of a discrete scale (identity on a continuous one)."""
        g = np.asarray(grades, dtype=np.float64)
        if self.levels is None:
            return g
        lv = np.asarray(self.levels)
        return lv[np.abs(g[..., None] - lv).argmin(axis=-1)]

    def to_dict(self) -> dict[str, object]:
        return {"lowest": self.lowest, "highest": self.highest,
                "levels": list(self.levels) if self.levels is not None else None}

    @classmethod
    def from_dict(cls, d: dict) -> GradeScale:
        lv = d.get("levels")
        return cls(float(d["lowest"]), float(d["highest"]), tuple(float(x) for x in lv) if lv else None)

    @classmethod
    def parse(cls, text: str) -> GradeScale:
        """``"LO:HI"`` (e.g. ``"1:3"``, ``"0:4"``) → a continuous scale; a clear ValueError otherwise."""
        try:
            lo, hi = (float(x) for x in text.split(":"))
        except ValueError:
            raise ValueError(f"grade scale must look like LO:HI (e.g. 1:3), got {text!r}") from None
        return cls(lo, hi)

    @classmethod
    def infer(cls, grades: np.ndarray) -> GradeScale:
        """The scale spanned by ``grades`` (levels when there are at most 11 distinct values)."""
        g = np.asarray(grades, dtype=np.float64)
        distinct = np.unique(g)
        if distinct.size < 2:
            raise ValueError(f"judgments hold a single grade ({distinct.tolist()}); a relevance model needs two or more")
        levels = tuple(float(x) for x in distinct) if distinct.size <= 11 else None
        return cls(float(distinct[0]), float(distinct[-1]), levels)


def split_of(query: str, modulo: int = 10) -> str:
    """``"eval"``, ``"validation"`` or ``"train"`` for a normalised query (the tower's split)."""
    if is_eval_query(query, modulo):
        return "eval"
    if is_validation_query(query, modulo):
        return "validation"
    return "train"


@dataclass
class JudgedPairs:
    """Judged pairs, one row each: ``queries/pin_ids/texts (N,)`` lists, ``grades (N,)`` float64,
    ``split (N,)`` object array of :data:`SPLITS`, and the dataset's :class:`GradeScale`."""

    queries: list[str]
    pin_ids: list[str]
    texts: list[str]
    grades: np.ndarray
    split: np.ndarray
    scale: GradeScale

    def __len__(self) -> int:
        return len(self.queries)

    def subset(self, which: str | slice | np.ndarray) -> JudgedPairs:
        """The rows of one split (``"train"``...), of a slice, or of a boolean/integer row selector."""
        if isinstance(which, str):
            idx = np.flatnonzero(self.split == which)
        elif isinstance(which, slice):
            idx = np.arange(len(self))[which]
        else:
            idx = np.asarray(which)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return JudgedPairs(
            [self.queries[i] for i in idx], [self.pin_ids[i] for i in idx], [self.texts[i] for i in idx],
            self.grades[idx], self.split[idx], self.scale,
        )

    def query_groups(self) -> list[np.ndarray]:
        """Row indices of each distinct query, in first-seen order."""
        groups: dict[str, list[int]] = {}
        for i, q in enumerate(self.queries):
            groups.setdefault(q, []).append(i)
        return [np.asarray(v, dtype=np.int64) for v in groups.values()]


def load_judged_pairs(dataset_dir: str | Path, scale: GradeScale | None = None, modulo: int = 10) -> JudgedPairs:
    """Judgments of a dataset directory joined with pin texts, split by query.

    Judged pins missing from ``pins.parquet`` or with empty text raise :class:`DataValidationError`
    naming the judgments row (a cross-encoder cannot score a pin without text). ``scale``: the
    declared grade scale (default: inferred from the grades); grades outside it raise
    :class:`GradeScaleError`.
    """
    paths = DatasetPaths(Path(dataset_dir))
    if not paths.judgments.exists():
        raise DataValidationError(paths.judgments, "file not found: a relevance model is trained on judgments "
                                  "(query, pin_id, grade)")
    jt = read_table(paths.judgments, JUDGMENTS)
    pins = read_table(paths.pins, PINS, columns=["pin_id", "text"])
    text_of = dict(zip(pins.column("pin_id").to_pylist(), pins.column("text").to_pylist(), strict=True))
    queries = jt.column("query").to_pylist()
    pin_ids = jt.column("pin_id").to_pylist()
    grades = jt.column("grade").to_numpy().astype(np.float64)
    texts = []
    for row, pid in enumerate(pin_ids):
        text = text_of.get(pid)
        if text is None:
            raise DataValidationError(paths.judgments, f"pin_id {pid!r} is not in {paths.pins}", column="pin_id", row=row)
        if not text or not text.strip():
            raise DataValidationError(paths.pins, f"pin {pid!r} (judgments row {row}) has no text to score",
                                      column="text")
        texts.append(text)
    if scale is None:
        try:
            scale = GradeScale.infer(grades)
        except ValueError as exc:
            raise GradeScaleError(paths.judgments, str(exc), column="grade") from None
    else:
        bad = np.flatnonzero((grades < scale.lowest - 1e-9) | (grades > scale.highest + 1e-9))
        if bad.size:
            raise GradeScaleError(
                paths.judgments, f"grade {grades[bad[0]]:g} is outside the declared scale "
                f"{scale.lowest:g}:{scale.highest:g}", column="grade", row=int(bad[0]),
            )
    split = np.asarray([split_of(q, modulo) for q in queries], dtype=object)
    return JudgedPairs(queries, pin_ids, texts, grades, split, scale)
