"""Build the simulator's :class:`Arena` from a dataset directory and per-arm retrieval strategies.

Queries are the judged queries of ``judgments.parquet``; their popularity is Zipf over a seeded
permutation (so head/torso/tail slices exist). Each arm serves its top ``k`` (see
:mod:`abtest.simulate.rankings`); a served pin's relevance is its judged grade rescaled to
``[0, 1]`` over the dataset's grade range. A pin the dataset never judged has, by default,
relevance **0** (``unjudged="zero"``: the convention of today's relevance report, so the simulated
users and nDCG agree on what is relevant); ``unjudged="sampled"`` gives it instead the relevance of
a random judged pin of the same query (seeded, the same for every arm that serves it) — the world
in which a new arm surfaces unjudged but relevant results, what model labels + PPI are for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from abtest.simulate.engine import Arena
from abtest.simulate.rankings import (
    QueryEncoder,
    Rankings,
    blend_rankings,
    bm25_pin_rankings,
    embedding_rankings,
    engagement_centroid_embeddings,
    with_fallback,
)
from encoders.data.schema import ENGAGEMENTS, JUDGMENTS, PINS, DatasetPaths, pin_embedding_matrix, read_table

STRATEGIES: tuple[str, ...] = ("bm25", "embedding", "blend")
UNJUDGED: tuple[str, ...] = ("zero", "sampled")


class SimulationSetupError(ValueError):
    """The dataset cannot support the requested arms (names the file and what is missing)."""


@dataclass
class DatasetArena:
    """The arena plus the rankings each arm serves (``{arm: {query: [pin_id...]}}``) and judgments."""

    arena: Arena
    rankings: dict[str, Rankings]
    judgments: dict[str, dict[str, float]]


def _judgments(dataset: DatasetPaths) -> dict[str, dict[str, float]]:
    t = read_table(dataset.judgments, JUDGMENTS)
    out: dict[str, dict[str, float]] = {}
    for q, p, g in zip(*(t.column(c).to_pylist() for c in ("query", "pin_id", "grade")), strict=True):
        out.setdefault(q, {})[p] = float(g)
    return out


def strategy_rankings(
    strategy: str, dataset: DatasetPaths, queries: list[str], k: int, bm25: Rankings,
    query_encoder: QueryEncoder | None = None,
) -> Rankings:
    """Rankings of one strategy; ``embedding`` uses ``query_encoder`` or engagement centroids."""
    if strategy == "bm25":
        return bm25
    if strategy not in STRATEGIES:
        raise SimulationSetupError(f"unknown retrieval strategy {strategy!r}; expected one of {STRATEGIES}")
    pins = read_table(dataset.pins, PINS)
    if "embedding" not in pins.column_names:
        raise SimulationSetupError(
            f"file {dataset.pins}, column 'embedding': missing; the {strategy!r} arm needs pin embeddings "
            "(run `searchsage pins embed` or use the bm25 strategy)"
        )
    pin_ids = pins.column("pin_id").to_pylist()
    emb = pin_embedding_matrix(pins)
    if query_encoder is not None:
        q_emb, has = np.asarray(query_encoder(queries), dtype=np.float32), np.ones(len(queries), dtype=bool)
    else:
        if not dataset.engagements.is_file():
            raise SimulationSetupError(
                f"file {dataset.engagements}: not found; without --treatment-bundle/--treatment-run the embedding "
                "arm embeds each query as the centroid of its engaged pins, which needs engagements.parquet"
            )
        eng = read_table(dataset.engagements, ENGAGEMENTS)
        q_emb, has = engagement_centroid_embeddings(eng, pin_ids, emb, queries)
    sel = [q for q, h in zip(queries, has, strict=True) if h]
    emb_rank = embedding_rankings(pin_ids, emb, sel, q_emb[has], k=k) if sel else {}
    emb_rank = with_fallback(emb_rank, bm25)
    return emb_rank if strategy == "embedding" else blend_rankings(bm25, emb_rank, k=k)


def arena_from_rankings(
    rankings: Mapping[str, Rankings], judgments: Mapping[str, Mapping[str, float]], queries: list[str],
    k: int, seed: int = 0, zipf: float = 1.0, unjudged: str = "zero",
) -> Arena:
    """Encode per-arm rankings as ``(Q, K)`` pin indices and relevance in ``[0, 1]``.

    ``unjudged``: ``"zero"`` (relevance 0) or ``"sampled"`` (a random judged grade of the query).
    """
    if unjudged not in UNJUDGED:
        raise SimulationSetupError(f"unknown unjudged relevance {unjudged!r}; expected one of {UNJUDGED}")
    fill_rng = np.random.default_rng([seed, 1_234])
    fill: dict[tuple[str, str], float] = {}
    grades = [g for qj in judgments.values() for g in qj.values()]
    lo, hi = (min(grades), max(grades)) if grades else (0.0, 1.0)
    span = hi - lo if hi > lo else 1.0
    pin_ids = sorted({p for r in rankings.values() for lst in r.values() for p in lst})
    pidx = {p: i for i, p in enumerate(pin_ids)}
    pins, rel = {}, {}
    for arm, ranking in rankings.items():
        P = np.full((len(queries), k), -1, dtype=np.int32)
        R = np.zeros((len(queries), k), dtype=np.float64)
        for qi, q in enumerate(queries):
            judged = judgments.get(q, {})
            for r, p in enumerate(ranking.get(q, [])[:k]):
                P[qi, r] = pidx[p]
                if p in judged:
                    R[qi, r] = (judged[p] - lo) / span
                elif unjudged == "sampled" and judged:
                    if (q, p) not in fill:
                        pool = list(judged.values())
                        fill[(q, p)] = (pool[int(fill_rng.integers(len(pool)))] - lo) / span
                    R[qi, r] = fill[(q, p)]
        pins[arm], rel[arm] = P, R
    rng = np.random.default_rng(seed)
    pop = np.empty(len(queries))
    pop[rng.permutation(len(queries))] = 1.0 / np.arange(1, len(queries) + 1) ** zipf
    return Arena(queries=list(queries), pin_ids=pin_ids, popularity=pop / pop.sum(), pins=pins, relevance=rel)


def build_dataset_arena(
    data_dir: str | Path, control: str = "bm25", treatment: str = "embedding", k: int = 20, seed: int = 0,
    query_encoder: QueryEncoder | None = None, arm_names: tuple[str, str] = ("control", "treatment"),
    precomputed: Mapping[str, Rankings] | None = None, unjudged: str = "zero",
) -> DatasetArena:
    """Arena for a dataset dir: ``control``/``treatment`` strategies, or ``precomputed`` rankings per arm name."""
    dataset = DatasetPaths(Path(data_dir))
    judgments = _judgments(dataset)
    queries = sorted(judgments)
    if precomputed is not None:
        rankings = {name: dict(precomputed[name]) for name in arm_names}
    else:
        pins = read_table(dataset.pins, PINS)
        bm25 = bm25_pin_rankings(pins.column("pin_id").to_pylist(), pins.column("text").to_pylist(), queries, k=k)
        rankings = {
            arm_names[0]: strategy_rankings(control, dataset, queries, k, bm25, query_encoder),
            arm_names[1]: strategy_rankings(treatment, dataset, queries, k, bm25, query_encoder),
        }
    arena = arena_from_rankings(rankings, judgments, queries, k, seed, unjudged=unjudged)
    return DatasetArena(arena, rankings, judgments)
