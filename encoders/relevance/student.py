"""The distilled relevance student: train it on teacher labels, save it, score pairs fast.

Training (:func:`train_student`): features of every label row (:mod:`encoders.relevance.student_data`),
one model per family (:mod:`encoders.relevance.student_models`) fitted on ``train`` rows with early
stopping on ``validation`` rows, and the family with the best validation score kept — nDCG@10 against
the teacher's grades over all validation candidates (``select_on="teacher"``) or against the human
grades of the judged validation pairs (``select_on="judged"``).

A student directory::

    student.json        manifest: format, family, feature names, grade scale, files, training figures
    model.txt|.onnx     LightGBM booster or the MLP as ONNX
    projection.npz      the q ⊙ p projection (mean (D,), components (k, D))
    text_index.json     BM25 vocabulary + IDF of the pin corpus

:class:`StudentScorer` loads it and scores ``(queries, pin_ids, texts) → (N,) float64`` grades with
features from a :class:`~encoders.relevance.features.FeatureSource`, batched end to end.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from encoders.relevance.engagement_stats import EngagementStatsConfig
from encoders.relevance.features import (
    FeatureSource,
    FeatureSourceError,
    ProductProjection,
    StudentFeaturizer,
    TextIndex,
    gather_inputs,
    tokenize,
)
from encoders.relevance.metrics import exp_gain
from encoders.relevance.pairs import GradeScale
from encoders.relevance.student_data import TeacherLabels, read_teacher_labels, training_matrix
from encoders.relevance.student_models import FAMILIES, FamilyOptions, FitData, load_family, new_family

MANIFEST = "student.json"
FORMAT = "searchsage-student/1"
SELECT_ON = ("teacher", "judged")


class StudentError(ValueError):
    """A student directory is missing, unreadable or does not match its feature source."""


# --- metrics --------------------------------------------------------------------------------------
def ndcg_at_k(groups: np.ndarray, grades: np.ndarray, scores: np.ndarray, lowest: float, k: int = 10) -> float:
    """Mean nDCG@k over groups (queries) with some gain; the evaluation's exponential gain
    (:func:`encoders.relevance.metrics.exp_gain`), so the student is chosen on what is reported.

    ``groups``/``grades``/``scores``: ``(N,)``; rows are ranked by ``scores`` within their group.
    """
    if len(groups) == 0:
        return float("nan")
    _, g = np.unique(groups, return_inverse=True)
    gains = exp_gain(grades, lowest)

    def dcg(order: np.ndarray) -> np.ndarray:
        gg = g[order]
        starts = np.r_[0, np.flatnonzero(np.diff(gg)) + 1]
        rank = np.arange(len(gg)) - np.repeat(starts, np.diff(np.r_[starts, len(gg)]))
        disc = np.where(rank < k, 1.0 / np.log2(rank + 2.0), 0.0)
        return np.bincount(gg, weights=gains[order] * disc, minlength=g.max() + 1)

    ideal = dcg(np.lexsort((-gains, g)))
    got = dcg(np.lexsort((-np.asarray(scores, dtype=np.float64), g)))
    ok = ideal > 0
    return float(np.mean(got[ok] / ideal[ok])) if ok.any() else float("nan")


def evaluate(labels: TeacherLabels, rows: np.ndarray, grades: np.ndarray, scale: GradeScale) -> dict[str, float]:
    """Figures of predicted ``grades (len(rows),)`` on label ``rows``: RMSE and nDCG@10 vs the teacher,
    nDCG@10 vs the human grades of the judged rows (NaN when none)."""
    q = np.asarray(labels.queries, dtype=object)[rows]
    teacher, judged = labels.grades[rows], labels.judged[rows]
    j = np.isfinite(judged)
    return {
        "rmse_teacher": float(np.sqrt(np.mean((grades - teacher) ** 2))),
        "ndcg10_teacher": ndcg_at_k(q, teacher, grades, scale.lowest),
        "ndcg10_judged": ndcg_at_k(q[j], judged[j], grades[j], scale.lowest) if j.any() else float("nan"),
        "rows": len(rows), "judged_rows": int(j.sum()),
    }


# --- training -------------------------------------------------------------------------------------
@dataclass
class StudentConfig:
    """``family``: one of :data:`FAMILIES` or ``"auto"`` (fit all of ``auto_families``, keep the best
    on ``select_on``); ``projection_dims``: k of the ``q ⊙ p`` projection; ``scale``: the grade
    scale (default: inferred from the labels' human grades)."""

    family: str = "auto"
    auto_families: tuple[str, ...] = FAMILIES
    select_on: str = "teacher"
    projection_dims: int = 8
    scale: GradeScale | None = None
    stats: EngagementStatsConfig = field(default_factory=EngagementStatsConfig)
    options: FamilyOptions = field(default_factory=FamilyOptions)

    def families(self) -> tuple[str, ...]:
        if self.family == "auto":
            return self.auto_families
        if self.family not in FAMILIES:
            raise ValueError(f"unknown student family {self.family!r}; expected one of {(*FAMILIES, 'auto')}")
        return (self.family,)


@dataclass
class FamilyResult:
    """One fitted family: validation figures, fit time (s) and model-specific figures."""

    family: str
    validation: dict[str, float]
    seconds: float
    figures: dict[str, Any]


@dataclass
class StudentReport:
    """What :func:`train_student` did: output directory, chosen family, every family's result."""

    out: Path
    family: str
    results: list[FamilyResult]
    train_rows: int
    validation_rows: int
    feature_names: list[str]


def train_student(labels_path: str | Path, dataset_dir: str | Path, source: FeatureSource, out: str | Path,
                  config: StudentConfig | None = None, source_description: str = "",
                  log: Callable[[str], None] = lambda _m: None) -> StudentReport:
    """Fit the student on ``labels_path`` with features from ``source`` and save it to ``out``."""
    config = config or StudentConfig()
    if config.select_on not in SELECT_ON:
        raise ValueError(f"select_on must be one of {SELECT_ON}, got {config.select_on!r}")
    families = config.families()
    labels = read_teacher_labels(labels_path, config.stats.modulo)
    scale = config.scale or labels.scale()
    t0 = time.perf_counter()
    tm = training_matrix(labels, dataset_dir, source, config.stats, config.projection_dims, config.options.seed)
    log(f"features: {tm.x.shape[0]} pairs x {tm.x.shape[1]} features in {time.perf_counter() - t0:.1f}s")
    tr, va = np.flatnonzero(tm.train), np.flatnonzero(~tm.train)
    if va.size == 0:
        raise ValueError(f"{labels.path}: no validation rows; the student is chosen and stopped on them")
    _, qid = np.unique(np.asarray(labels.queries, dtype=object), return_inverse=True)
    unit = np.clip(scale.to_unit(labels.grades), 0.0, 1.0)
    data = FitData(tm.x[tr], unit[tr], qid[tr], tm.x[va], unit[va], qid[va], scale.span)
    results, models = [], {}
    key = "ndcg10_teacher" if config.select_on == "teacher" else "ndcg10_judged"
    for name in families:
        t1 = time.perf_counter()
        model = new_family(name).fit(data, config.options)
        seconds = time.perf_counter() - t1
        figures = evaluate(labels, va, scale.from_unit(model.predict_unit(tm.x[va])), scale)
        results.append(FamilyResult(name, figures, round(seconds, 2), model.figures))
        models[name] = model
        log(f"{name}: validation " + ", ".join(f"{k}={v:.4f}" for k, v in figures.items() if isinstance(v, float))
            + f" ({seconds:.1f}s)")
    scored = [r for r in results if np.isfinite(r.validation[key])]
    if not scored:
        raise ValueError(f"{labels.path}: no validation figure {key!r} (no judged validation rows?); "
                         f"select on 'teacher' instead")
    best = max(scored, key=lambda r: r.validation[key])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = models[best.family]
    spec = {"family": best.family, **model.save(out)}
    np.savez(out / "projection.npz", mean=tm.featurizer.projection.mean, components=tm.featurizer.projection.components)
    (out / "text_index.json").write_text(json.dumps(tm.featurizer.text.to_dict()))
    manifest = {
        "format": FORMAT, "family": best.family, "feature_names": tm.feature_names, "grade_scale": scale.to_dict(),
        "embedding_dim": int(tm.featurizer.projection.mean.shape[0]), "model": spec,
        "featurizer": {"projection": "projection.npz", "text_index": "text_index.json"},
        "engagement_stats": asdict(config.stats),
        "training": {"labels": str(Path(labels_path).resolve()), "dataset": str(Path(dataset_dir).resolve()),
                     "source": source_description, "select_on": key, "train_rows": int(tr.size),
                     "validation_rows": int(va.size), "families": {r.family: asdict(r) for r in results}},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_jsonable))
    return StudentReport(out, best.family, results, int(tr.size), int(va.size), tm.feature_names)


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def training_source(manifest: dict[str, Any], threads: int = 2) -> FeatureSource:
    """The feature source a student was trained with (``training.source`` = ``feast:REPO``,
    ``bundle:B`` or ``run:R``, with ``training.dataset``); a :class:`StudentError` if it is gone."""
    from encoders.relevance.feature_sources import DatasetFeatureSource, FeastFeatureSource

    training = manifest.get("training", {})
    kind, _, where = str(training.get("source", "")).partition(":")
    dataset = training.get("dataset")
    if kind == "feast" and Path(where, "feature_store.yaml").is_file():
        return FeastFeatureSource(where)
    if kind in ("bundle", "run") and where and Path(where).exists() and dataset and Path(dataset).is_dir():
        return DatasetFeatureSource(dataset, threads=threads, **{kind: where})
    raise StudentError(f"no feature source given and the one the student was trained with ({kind or 'unknown'}: "
                       f"{where or '?'}, dataset {dataset}) is not available; pass source= (FeastFeatureSource or "
                       f"DatasetFeatureSource)")


# --- scoring --------------------------------------------------------------------------------------
class StudentScorer:
    """A saved student: ``score(queries, pin_ids, texts) → (N,) float64`` grades on the dataset's scale.

    ``source`` provides the vectors and engagement statistics (a :class:`FeastFeatureSource` online,
    a :class:`DatasetFeatureSource` offline); default: the kind of source it was trained with, rebuilt
    from the manifest (the Feast repository, or the dataset + bundle/run), on first use. Pairs are
    scored in one batch: one read per distinct query and pin, vectorised features, one model call.
    """

    def __init__(self, path: str | Path, source: FeatureSource | None = None, threads: int = 2):
        self.path = Path(path)
        mpath = self.path / MANIFEST
        if not mpath.is_file():
            raise StudentError(f"{mpath} not found: --rerank/--student must be a directory written by "
                               f"`searchsage relevance train-student`")
        try:
            self.manifest = json.loads(mpath.read_text())
            if self.manifest.get("format") != FORMAT:
                raise StudentError(f"{mpath}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
            proj = np.load(self.path / self.manifest["featurizer"]["projection"])
            text = TextIndex.from_dict(json.loads((self.path / self.manifest["featurizer"]["text_index"]).read_text()))
            self.featurizer = StudentFeaturizer(text, ProductProjection(proj["mean"], proj["components"]))
            self.model = load_family(self.path, self.manifest["model"], threads)
        except (OSError, KeyError, ValueError, json.JSONDecodeError) as exc:
            if isinstance(exc, StudentError):
                raise
            raise StudentError(f"{self.path}: unreadable student ({exc})") from exc
        self.scale = GradeScale.from_dict(self.manifest["grade_scale"])
        self.source = source
        self.threads = threads

    @property
    def family(self) -> str:
        return str(self.manifest["family"])

    @property
    def feature_names(self) -> list[str]:
        return list(self.manifest["feature_names"])

    def features(self, queries: Sequence[str], pin_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Feature matrix ``(N, F)`` float32 of the pairs, read from :attr:`source`."""
        if self.source is None:
            self.source = training_source(self.manifest, self.threads)
        n = len(queries)
        if len(pin_ids) != n or len(texts) != n:
            raise ValueError(f"{n} queries, {len(pin_ids)} pin ids and {len(texts)} texts: need one of each per pair")
        inputs = gather_inputs(self.source, queries, pin_ids)
        dim = int(self.featurizer.projection.mean.shape[0])
        if n and inputs.query_vectors.shape[1] != dim:
            raise FeatureSourceError(f"the feature source gives {inputs.query_vectors.shape[1]}-d vectors but the "
                                     f"student {self.path} was trained on {dim}-d ones")
        return self.featurizer.matrix(inputs, queries, texts)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Grades ``(N,)`` float64 of a feature matrix ``(N, F)`` (clipped to the grade scale)."""
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(f"expected (N, {len(self.feature_names)}) features, got {x.shape}")
        if len(x) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.scale.from_unit(self.model.predict_unit(x))

    def warm_up(self) -> None:
        """Load what a running ranker already holds (the feature source's tables, the tokeniser), so
        a timed call measures scoring only."""
        self.score([], [], [])
        tokenize("warm up")

    def score(self, queries: Sequence[str], pin_ids: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Student grades ``(N,)`` float64 of pairs ``(queries[i], pin_ids[i])`` with pin ``texts[i]``."""
        return self.predict(self.features(queries, pin_ids, texts))
