"""The retrieval systems compared by ``searchsage evaluate``; each ranks the index for every eval query.

==============  ===============================================================================
``bm25``        BM25 over pin texts (:class:`encoders.eval.baselines.BM25Retriever`).
``zero_shot``   base model, mean pooling + L2 norm on queries *and* pins (cosine). Pin vectors
                are ``pins.parquet:embedding`` when ``pin_tower.json`` says they were made that
                way with the same base model, otherwise the index texts are encoded.
``searchsage``  the trained query tower of a run directory (:meth:`QueryTower.load`) against the
                frozen ``pins.parquet:embedding`` (inner product, as in training).
``prf``         ``searchsage`` (``zero_shot`` without a run) with pin-space pseudo-relevance feedback
                (:class:`encoders.runtime.pin_feedback.PinFeedback`): each query moved towards the
                mean of its own top-``k`` pins, then searched again. No text index involved.
``blend``       reciprocal-rank fusion of ``bm25`` and ``searchsage`` (``zero_shot`` without a run).
==============  ===============================================================================
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from encoders.eval.baselines import (
    BM25Retriever,
    encode_with_tower,
    pin_tower_matches_zero_shot,
    reciprocal_rank_fusion,
    zero_shot_tower,
)
from encoders.eval.evalset import EvalInputError, EvalSet
from encoders.runtime.pin_feedback import PinFeedback
from encoders.runtime.vectors import exact_top_k, l2_normalize

SYSTEMS = ("bm25", "zero_shot", "searchsage", "prf", "blend")
BASELINES = ("bm25", "zero_shot")


@dataclass
class SystemRun:
    """One system's exact ranking ``(Q, K)`` of index positions (``-1`` pads), and, for embedding
    systems, the vectors it searched with (``queries (Q, D)``, ``index (N_index, D)``)."""

    name: str
    ranking: np.ndarray
    seconds: float
    queries: np.ndarray | None = None
    index: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SystemOptions:
    """Knobs shared by the systems (lengths in tokens; ``depth`` = ranking length kept; ``feedback``:
    the ``prf`` system's top-``k`` and weight)."""

    depth: int = 100
    fusion_depth: int = 1000
    rrf_c: float = 60.0
    query_max_length: int = 32
    pin_max_length: int = 64
    batch_size: int = 128
    chunk_size: int = 256
    progress: bool = False
    feedback: PinFeedback = field(default_factory=PinFeedback)


def check_run_dir(run_dir: str | Path) -> Path:
    """Raise :class:`EvalInputError` unless ``run_dir`` holds ``tower_config.json`` and ``tower.pt``."""
    d = Path(run_dir)
    if not d.is_dir():
        raise EvalInputError(f"run directory {d} does not exist (expected the output of `searchsage train`)")
    for name in ("tower_config.json", "tower.pt"):
        if not (d / name).is_file():
            raise EvalInputError(f"run directory {d}: missing {name} (expected the output of `searchsage train`)")
    return d


def load_run_tower_for(run_dir: str | Path, pin_dim: int):  # -> QueryTower (lazy torch import)
    """The query tower of a run directory, checked against the frozen pins' width ``pin_dim``;
    :class:`EvalInputError` naming the run when it cannot be loaded or does not fit."""
    from encoders.model.tower import QueryTower

    d = check_run_dir(run_dir)
    try:
        tower = QueryTower.load(d)
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise EvalInputError(f"run directory {d}: cannot load the query tower: {exc}") from None
    if tower.out_dim != pin_dim:
        raise EvalInputError(
            f"run directory {d}: the query tower outputs {tower.out_dim}-d vectors but pins.parquet embeddings "
            f"are {pin_dim}-d (was the run trained on another dataset?)"
        )
    return tower


def run_bm25(ev: EvalSet, depth: int, opts: SystemOptions) -> SystemRun:
    t0 = time.perf_counter()
    ids, _ = BM25Retriever(ev.index_texts, progress=opts.progress).search(ev.queries, depth)
    note = "bm25s Lucene k1=1.5 b=0.75; lowercase, tokens of 2+ word chars, English stopwords, no stemming"
    return SystemRun("bm25", ids, time.perf_counter() - t0, notes=[note])


def run_zero_shot(ev: EvalSet, base_model: str | Path, depth: int, opts: SystemOptions) -> SystemRun:
    t0 = time.perf_counter()
    tower = zero_shot_tower(base_model, max_length=opts.query_max_length)
    q = encode_with_tower(tower, ev.queries, True, opts.query_max_length, opts.batch_size, opts.progress)
    if ev.has_embeddings and pin_tower_matches_zero_shot(ev.root, base_model):
        x = ev.index_embeddings()
        note = "pin vectors reused from pins.parquet (pin_tower.json: same base model, mean pooling)"
        if x.shape[1] != q.shape[1]:
            raise EvalInputError(f"pins.parquet embeddings are {x.shape[1]}-d but the base model gives {q.shape[1]}-d")
    else:
        x = encode_with_tower(tower, ev.index_texts, False, opts.pin_max_length, opts.batch_size, opts.progress)
        note = f"pin vectors encoded from index texts (max_length {opts.pin_max_length})"
    x = l2_normalize(x)
    ids, _ = exact_top_k(q, x, depth, opts.chunk_size, opts.progress)
    return SystemRun("zero_shot", ids, time.perf_counter() - t0, q, x, [note])


def run_searchsage(ev: EvalSet, run_dir: str | Path, depth: int, opts: SystemOptions) -> SystemRun:
    t0 = time.perf_counter()
    d = Path(run_dir)
    x = ev.index_embeddings()
    tower = load_run_tower_for(d, x.shape[1])
    max_len = int(tower.config.max_length)
    q = encode_with_tower(tower, ev.queries, True, max_len, opts.batch_size, opts.progress)
    ids, _ = exact_top_k(q, x, depth, opts.chunk_size, opts.progress)
    return SystemRun("searchsage", ids, time.perf_counter() - t0, q, x, [f"run {d}"])


def run_prf(emb: SystemRun, depth: int, opts: SystemOptions) -> SystemRun:
    t0 = time.perf_counter()
    fb = opts.feedback
    q = fb.apply(emb.queries, emb.index, opts.chunk_size)  # type: ignore[arg-type]
    ids, _ = exact_top_k(q, emb.index, depth, opts.chunk_size, opts.progress)  # type: ignore[arg-type]
    note = f"{emb.name} + pin-space feedback: query + {fb.weight:g} x mean of its top {fb.k} pins, searched again"
    return SystemRun("prf", ids, time.perf_counter() - t0 + emb.seconds, q, emb.index, [note])


def run_blend(text: SystemRun, emb: SystemRun, depth: int, opts: SystemOptions) -> SystemRun:
    t0 = time.perf_counter()
    ids = reciprocal_rank_fusion([text.ranking, emb.ranking], depth, c=opts.rrf_c)
    note = f"RRF(c={opts.rrf_c:g}) of {text.name} and {emb.name}, top {text.ranking.shape[1]} of each"
    return SystemRun("blend", ids, time.perf_counter() - t0 + text.seconds + emb.seconds, notes=[note])


def run_systems(
    ev: EvalSet,
    systems: list[str],
    run_dir: str | Path | None,
    base_model: str | Path | None,
    opts: SystemOptions,
) -> dict[str, SystemRun]:
    """Rank the index with each system in ``systems`` → ``{name: SystemRun}`` (ranking depth = ``opts.depth``)."""
    bad = [s for s in systems if s not in SYSTEMS]
    if bad:
        raise EvalInputError(f"unknown system(s) {bad}; expected a subset of {list(SYSTEMS)}")
    if "searchsage" in systems and run_dir is None:
        raise EvalInputError("system 'searchsage' needs a trained run directory (--run RUN)")
    if run_dir is not None:
        check_run_dir(run_dir)
    if base_model is None:
        base_model = _default_base_model(run_dir)
    deep = max(opts.depth, opts.fusion_depth) if "blend" in systems else opts.depth
    emb_for_blend = "searchsage" if run_dir is not None else "zero_shot"
    needed = set(systems) | ({"bm25", emb_for_blend} if "blend" in systems else set())
    needed |= {emb_for_blend} if "prf" in systems else set()
    runs: dict[str, SystemRun] = {}
    if "bm25" in needed:
        runs["bm25"] = run_bm25(ev, deep, opts)
    if "zero_shot" in needed:
        runs["zero_shot"] = run_zero_shot(ev, base_model, deep, opts)
    if "searchsage" in needed:
        runs["searchsage"] = run_searchsage(ev, run_dir, deep, opts)  # type: ignore[arg-type]
    if "prf" in needed:
        runs["prf"] = run_prf(runs[emb_for_blend], deep, opts)
    if "blend" in needed:
        runs["blend"] = run_blend(runs["bm25"], runs[emb_for_blend], opts.depth, opts)
    for r in runs.values():
        r.ranking = r.ranking[:, : opts.depth]
    return {s: runs[s] for s in systems}


def _default_base_model(run_dir: str | Path | None) -> Path:
    """The run's base model (so zero-shot is the run's untrained counterpart), else the packaged one."""
    from encoders.model.base_model import resolve_base_model

    if run_dir is not None:
        from encoders.model.tower import TowerConfig

        cfg = TowerConfig.from_json((Path(run_dir) / "tower_config.json").read_text())
        return resolve_base_model(cfg.base_model)
    return resolve_base_model(None)
