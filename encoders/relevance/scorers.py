"""Pair scorers compared by ``searchsage relevance evaluate``: ``(queries, pin_ids, texts) -> (N,) scores``.

A :data:`Scorer` is any callable taking three equal-length lists (one judged pair per position)
and returning ``(N,)`` float scores, higher = more relevant. Scorers that predict *grades* on the
judgments' scale (the teacher, the student) carry ``predicts_grades = True``; a ``description``
attribute, when present, lands in the report's notes.

==============  ===============================================================================
``random``      a seeded hash of (seed, query, pin_id): a random order, stable under subsetting.
``bm25``        BM25 of the query against the pin's text, IDF and average length over **all** pin
                texts of the dataset; bm25s tokenisation and Lucene scoring, k1=1.5, b=0.75 (the
                scores of :class:`encoders.eval.baselines.BM25Retriever` for the given pairs).
``zero_shot``   base model, mean pooling + L2 norm on both sides (cosine); pin vectors from
                ``pins.parquet:embedding`` when ``pin_tower.json`` says they were made so with the
                same model, else the pin texts are encoded (max_length 64).
``tower``       a trained query tower (:meth:`QueryTower.load`) · the frozen pin embedding.
``teacher``     :class:`encoders.runtime.cross_encoder.CrossEncoderScorer` (grades).
``student``     :class:`encoders.relevance.student.StudentScorer` (grades).
==============  ===============================================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from encoders.eval.evalset import EvalInputError

Scorer = Callable[[list[str], list[str], list[str]], np.ndarray]


class RelevanceEvalError(EvalInputError):
    """The inputs of a relevance evaluation are missing or unusable (a user error, not a bug)."""


class RandomScorer:
    """Uniform ``[0, 1)`` scores from ``blake2b(seed, query, pin_id)``: a seeded random order."""

    predicts_grades = False

    def __init__(self, seed: int = 0):
        self.seed = int(seed)
        self.description = f"seeded random order (blake2b of seed {self.seed}, query, pin_id)"

    def __call__(self, queries: list[str], pin_ids: list[str], texts: list[str]) -> np.ndarray:
        out = np.empty(len(queries), dtype=np.float64)
        for i, (q, p) in enumerate(zip(queries, pin_ids, strict=True)):
            h = hashlib.blake2b(f"{self.seed}\x1f{q}\x1f{p}".encode(), digest_size=8).digest()
            out[i] = int.from_bytes(h, "little") / 2.0**64
        return out


class BM25PairScorer:
    """BM25 (Lucene variant) of given (query, text) pairs against the statistics of ``corpus``: the
    student's ``bm25`` feature (:class:`encoders.relevance.features.TextIndex`, vectorised).

    ``score = Σ_{t ∈ query tokens} idf(t) · tf / (tf + k1 · (1 − b + b · |d| / avgdl))`` with
    ``idf(t) = ln(1 + (N − df + 0.5) / (df + 0.5))``; a repeated query token counts once per repeat.
    """

    predicts_grades = False

    def __init__(self, corpus: Sequence[str], k1: float = 1.5, b: float = 0.75):
        from encoders.relevance.features import TextIndex

        if len(corpus) == 0:
            raise ValueError("BM25 needs at least one document")
        self.index = TextIndex.fit(list(corpus), k1=k1, b=b)
        self.n_docs = self.index.n_docs
        self.description = (f"BM25 Lucene k1={k1:g} b={b:g}, IDF over {self.n_docs:,} pin texts; lowercase, tokens "
                            "of 2+ word chars, English stopwords, no stemming")

    def idf(self, token: str) -> float:
        return self.index.idf_of(token)

    def __call__(self, queries: list[str], pin_ids: list[str], texts: list[str]) -> np.ndarray:
        return self.index.pair_features(queries, texts)[:, 0]


class EmbeddingScorer:
    """``score = query_vector · pin_vector``: distinct queries encoded once per call.

    ``encode_queries(list[str]) -> (U, D)``; ``pin_vectors(pin_ids, texts) -> (N, D)``.
    """

    predicts_grades = False

    def __init__(
        self,
        encode_queries: Callable[[list[str]], np.ndarray],
        pin_vectors: Callable[[list[str], list[str]], np.ndarray],
        description: str,
    ):
        self.encode_queries, self.pin_vectors, self.description = encode_queries, pin_vectors, description

    def __call__(self, queries: list[str], pin_ids: list[str], texts: list[str]) -> np.ndarray:
        if not queries:
            return np.zeros(0, dtype=np.float64)
        distinct = list(dict.fromkeys(queries))
        row = {q: i for i, q in enumerate(distinct)}
        qv = np.asarray(self.encode_queries(distinct), dtype=np.float32)
        pv = np.asarray(self.pin_vectors(pin_ids, texts), dtype=np.float32)
        qi = np.fromiter((row[q] for q in queries), dtype=np.int64, count=len(queries))
        return np.einsum("nd,nd->n", qv[qi], pv).astype(np.float64)


class StoredPinVectors:
    """Pin vectors looked up by pin id in a ``(N_pins, D)`` matrix (``pins.parquet:embedding``)."""

    def __init__(self, matrix: np.ndarray, pin_ids: Sequence[str], normalize: bool = False):
        from encoders.runtime.vectors import l2_normalize

        self.matrix = l2_normalize(matrix) if normalize else np.asarray(matrix, dtype=np.float32)
        self.row_of = {p: i for i, p in enumerate(pin_ids)}

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __call__(self, pin_ids: list[str], texts: list[str]) -> np.ndarray:
        missing = [p for p in pin_ids if p not in self.row_of]
        if missing:
            raise RelevanceEvalError(f"pin {missing[0]!r} has no stored embedding in pins.parquet")
        return self.matrix[[self.row_of[p] for p in pin_ids]]


def load_pin_embeddings(dataset_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """``(pin_ids, (N_pins, D) float32)`` of ``pins.parquet:embedding``; a clear error when absent."""
    import pyarrow.parquet as pq

    from encoders.data.schema import PINS, DatasetPaths, pin_embedding_matrix, read_table

    path = DatasetPaths(Path(dataset_dir)).pins
    if path.exists() and "embedding" not in pq.read_schema(path).names:
        raise RelevanceEvalError(
            f"file {path}: no 'embedding' column; this system needs the frozen pin embeddings "
            "(create them with `searchsage pins embed`)"
        )
    table = read_table(path, PINS, columns=["pin_id", "embedding"])
    return table.column("pin_id").to_pylist(), pin_embedding_matrix(table)


def _tower_query_encoder(tower, max_length: int, batch_size: int) -> Callable[[list[str]], np.ndarray]:
    from encoders.eval.baselines import encode_with_tower

    return lambda qs: encode_with_tower(tower, qs, as_query=True, max_length=max_length, batch_size=batch_size)


def default_base_model(run_dir: str | Path | None) -> Path:
    """The run's base model (zero-shot = the run's untrained counterpart), else the packaged one."""
    from encoders.model.base_model import resolve_base_model

    if run_dir is not None and (Path(run_dir) / "tower_config.json").is_file():
        from encoders.model.tower import TowerConfig

        return resolve_base_model(TowerConfig.from_json((Path(run_dir) / "tower_config.json").read_text()).base_model)
    return resolve_base_model(None)


def zero_shot_scorer(
    dataset_dir: str | Path, base_model: str | Path, query_max_length: int = 32, pin_max_length: int = 64,
    batch_size: int = 128,
) -> EmbeddingScorer:
    """Cosine of the base model's mean-pooled query and pin vectors (stored pin vectors when they match)."""
    from encoders.eval.baselines import (
        encode_with_tower,
        pin_tower_matches_zero_shot,
        zero_shot_tower,
    )
    from encoders.runtime.vectors import l2_normalize

    tower = zero_shot_tower(base_model, max_length=query_max_length)
    encode = _tower_query_encoder(tower, query_max_length, batch_size)
    if pin_tower_matches_zero_shot(dataset_dir, base_model):
        ids, matrix = load_pin_embeddings(dataset_dir)
        pins: Callable[[list[str], list[str]], np.ndarray] = StoredPinVectors(matrix, ids, normalize=True)
        note = "pin vectors reused from pins.parquet (pin_tower.json: same base model, mean pooling)"
    else:
        cache: dict[str, np.ndarray] = {}

        def pins(pin_ids: list[str], texts: list[str]) -> np.ndarray:
            todo = list(dict.fromkeys(t for t in texts if t not in cache))
            if todo:
                vecs = l2_normalize(encode_with_tower(tower, todo, False, pin_max_length, batch_size))
                cache.update(zip(todo, vecs, strict=True))
            return np.stack([cache[t] for t in texts])

        note = f"pin texts encoded (max_length {pin_max_length}; pin_tower.json does not match this model)"
    name = "/".join(Path(base_model).parts[-2:])
    return EmbeddingScorer(encode, pins, f"zero-shot {name}, mean pooling, cosine; {note}")


def tower_scorer(dataset_dir: str | Path, run_dir: str | Path, batch_size: int = 128) -> EmbeddingScorer:
    """The run's query tower · the frozen ``pins.parquet:embedding`` (inner product, as in training)."""
    from encoders.eval.systems import load_run_tower_for

    d = Path(run_dir)
    ids, matrix = load_pin_embeddings(dataset_dir)
    tower = load_run_tower_for(d, matrix.shape[1])
    encode = _tower_query_encoder(tower, int(tower.config.max_length), batch_size)
    return EmbeddingScorer(encode, StoredPinVectors(matrix, ids), f"query tower of {d} · frozen pin embedding")


class GradeScorer:
    """Wraps a model that predicts grades: ``fn(queries, pin_ids, texts) -> (N,)`` on the grade scale."""

    predicts_grades = True

    def __init__(self, fn: Scorer, description: str, prepare: Callable[[list[str]], str] | None = None):
        self.fn, self.description, self._prepare = fn, description, prepare

    def prepare(self, queries: list[str]) -> None:
        """Untimed work done once per query before scoring (the student reads the stored query
        vectors); what it did is appended to :attr:`description`."""
        if self._prepare is not None:
            self.description += f"; {self._prepare(queries)}"

    def __call__(self, queries: list[str], pin_ids: list[str], texts: list[str]) -> np.ndarray:
        return np.asarray(self.fn(queries, pin_ids, texts), dtype=np.float64)


def _lazy_import(module: str, name: str, what: str):
    import importlib

    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        raise RelevanceEvalError(f"the {what} is not available in this install ({module} is missing)") from None


def teacher_scorer(path: str | Path, threads: int = 1) -> GradeScorer:
    """The exported cross-encoder (onnxruntime): calibrated grades of (query, text) pairs."""
    cls = _lazy_import("encoders.runtime.cross_encoder", "CrossEncoderScorer", "cross-encoder teacher scorer")
    try:
        scorer = cls(path, threads=threads)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise RelevanceEvalError(f"--teacher {path}: cannot load the cross-encoder: {exc}") from None
    return GradeScorer(lambda q, p, t: scorer.score(q, t), f"cross-encoder teacher {path} (onnxruntime, {threads} threads)")


def student_scorer(path: str | Path, threads: int = 1) -> GradeScorer:
    """The distilled student ranker (:class:`encoders.relevance.student.StudentScorer`): grades."""
    cls = _lazy_import("encoders.relevance.student", "StudentScorer", "student scorer")
    try:
        student = cls(path, threads=threads)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise RelevanceEvalError(f"--student {path}: cannot load the student: {exc}") from None
    if not hasattr(student, "score"):
        return GradeScorer(student, f"student {path}")

    def read_stored_query_vectors(queries: list[str]) -> str:
        import time

        from encoders.relevance.feature_sources import StoredQueryVectors
        from encoders.relevance.student import training_source

        stored = StoredQueryVectors(student.source or training_source(student.manifest, student.threads))
        t0 = time.perf_counter()
        stored.prefetch(queries)
        student.source = stored
        student.warm_up()
        return (f"pairs/s: scoring from stored features; the {len(set(queries)):,} query vectors and the ranker's tables were read "
                f"once before timing in {time.perf_counter() - t0:.1f} s, as a ranker reads them from the "
                f"online store")

    return GradeScorer(student.score, f"student {path}", prepare=read_stored_query_vectors)


SYSTEMS: tuple[str, ...] = ("random", "bm25", "zero_shot", "tower", "teacher", "student")


def build_scorers(
    systems: Sequence[str],
    dataset_dir: str | Path,
    *,
    run_dir: str | Path | None = None,
    teacher: str | Path | None = None,
    student: str | Path | None = None,
    base_model: str | Path | None = None,
    seed: int = 0,
    threads: int = 1,
) -> dict[str, Scorer]:
    """The scorers of ``systems`` (a subset of :data:`SYSTEMS`), in that order, for one dataset."""
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        raise RelevanceEvalError(f"unknown system(s) {bad}; expected a subset of {list(SYSTEMS)}")
    needs = {"tower": (run_dir, "--run RUN"), "teacher": (teacher, "--teacher PATH"), "student": (student, "--student PATH")}
    for name, (value, flag) in needs.items():
        if name in systems and value is None:
            raise RelevanceEvalError(f"system {name!r} needs {flag}")
    out: dict[str, Scorer] = {}
    for name in systems:
        if name == "random":
            out[name] = RandomScorer(seed)
        elif name == "bm25":
            from encoders.data.schema import PINS, DatasetPaths, read_table

            texts = read_table(DatasetPaths(Path(dataset_dir)).pins, PINS, columns=["text"]).column("text").to_pylist()
            out[name] = BM25PairScorer(texts)
        elif name == "zero_shot":
            from encoders.model.base_model import resolve_base_model

            model = resolve_base_model(base_model) if base_model is not None else default_base_model(run_dir)
            out[name] = zero_shot_scorer(dataset_dir, model)
        elif name == "tower":
            out[name] = tower_scorer(dataset_dir, run_dir)  # type: ignore[arg-type]
        elif name == "teacher":
            out[name] = teacher_scorer(teacher, threads)  # type: ignore[arg-type]
        else:
            out[name] = student_scorer(student, threads)  # type: ignore[arg-type]
    return out
