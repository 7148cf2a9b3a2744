"""Per-arm retrieval results for the simulator: ``{query: [pin_id, ...]}`` computed once per arm.

The simulator itself only needs these plain rankings (no torch, no model). Helpers here build them

* from **BM25** over pin texts (``bm25s``) — the classic text-retrieval control;
* from **embeddings**: pin embeddings ``(P, D)`` (``pins.parquet:embedding``) and query embeddings
  ``(Q, D)`` from any callable ``encode(list[str]) -> (Q, D)`` — e.g.
  :class:`encoders.runtime.BundleEncoder` (ONNX, torch-free), a trained run
  (:func:`run_query_encoder`, needs torch), or, with no model at all,
  :func:`engagement_centroid_embeddings` (each query = the mean embedding of pins engaged for it
  in ``engagements.parquet``, a model-free stand-in for a learned query tower);
* as a **blend** of two rankings by reciprocal-rank fusion.

Dot-product scores are used (embeddings are L2-normalised in this project, so dot = cosine).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

Rankings = dict[str, list[str]]
QueryEncoder = Callable[[list[str]], np.ndarray]


def bm25_pin_rankings(pin_ids: Sequence[str], pin_texts: Sequence[str], queries: Sequence[str], k: int = 20) -> Rankings:
    """Top-``k`` pins per query by BM25 over ``pin_texts`` — the evaluation baseline's index
    (:class:`encoders.eval.baselines.BM25Retriever`: lower-cased, English stopwords)."""
    from encoders.eval.baselines import BM25Retriever

    rows, _ = BM25Retriever(pin_texts).search(queries, k)
    ids = np.asarray(pin_ids, dtype=object)
    return {q: [str(p) for p in ids[row[row >= 0]]] for q, row in zip(queries, rows, strict=True)}  # -1: no match


def embedding_rankings(
    pin_ids: Sequence[str], pin_emb: np.ndarray, queries: Sequence[str], query_emb: np.ndarray, k: int = 20,
    block: int = 1024,
) -> Rankings:
    """Top-``k`` pins per query by dot product of ``query_emb (Q, D)`` with ``pin_emb (P, D)``."""
    pin_emb = np.asarray(pin_emb, dtype=np.float32)
    query_emb = np.asarray(query_emb, dtype=np.float32)
    if query_emb.shape[0] != len(queries) or pin_emb.shape[0] != len(pin_ids):
        raise ValueError(
            f"shapes do not match: {len(queries)} queries vs query_emb {query_emb.shape}, "
            f"{len(pin_ids)} pins vs pin_emb {pin_emb.shape}"
        )
    if query_emb.shape[1] != pin_emb.shape[1]:
        raise ValueError(f"query embeddings have D={query_emb.shape[1]} but pin embeddings D={pin_emb.shape[1]}")
    k = min(k, len(pin_ids))
    ids = np.asarray(pin_ids, dtype=object)
    out: Rankings = {}
    for s in range(0, len(queries), block):
        scores = query_emb[s : s + block] @ pin_emb.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        for q, row in zip(queries[s : s + block], top, strict=True):
            out[q] = [str(p) for p in ids[row]]
    return out


def blend_rankings(a: Mapping[str, list[str]], b: Mapping[str, list[str]], k: int = 20, c: float = 60.0) -> Rankings:
    """Reciprocal-rank fusion ``Σ 1 / (c + rank)`` of two rankings, top ``k`` per query."""
    out: Rankings = {}
    for q in dict.fromkeys([*a, *b]):
        score: dict[str, float] = {}
        for ranking in (a.get(q, []), b.get(q, [])):
            for r, pid in enumerate(ranking):
                score[pid] = score.get(pid, 0.0) + 1.0 / (c + r + 1)
        out[q] = sorted(score, key=lambda p: (-score[p], p))[:k]
    return out


def engagement_centroid_embeddings(
    engagements: pa.Table, pin_ids: Sequence[str], pin_emb: np.ndarray, queries: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """Model-free query embeddings: the L2-normalised mean embedding of each query's engaged pins.

    Returns ``(query_emb (Q, D) float32, has_engagement (Q,) bool)``; queries without engagement
    get zeros (callers fall back to another arm's results for them).
    """
    index = {p: i for i, p in enumerate(pin_ids)}
    qidx = {q: i for i, q in enumerate(queries)}
    out = np.zeros((len(queries), pin_emb.shape[1]), dtype=np.float64)
    counts = np.zeros(len(queries))
    for q, p in zip(engagements.column("query").to_pylist(), engagements.column("pin_id").to_pylist(), strict=True):
        if q in qidx and p in index:
            out[qidx[q]] += pin_emb[index[p]]
            counts[qidx[q]] += 1
    has = counts > 0
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    out = np.where(norms > 0, out / np.where(norms > 0, norms, 1.0), 0.0)
    return out.astype(np.float32), has


def bundle_query_encoder(path: str | Path, variant: str = "fp32", threads: int = 2) -> QueryEncoder:
    """A query encoder from an exported bundle (``encoders.runtime.BundleEncoder``, torch-free)."""
    from encoders.runtime import BundleEncoder

    return BundleEncoder(path, variant=variant, threads=threads, kind="query").encode


def run_query_encoder(run_dir: str | Path) -> QueryEncoder:
    """A query encoder from a training run directory (``tower_config.json`` + ``tower.pt``; needs torch)."""
    from encoders.model.tower import QueryTower, encode_texts, load_tokenizer

    tower = QueryTower.load(run_dir)
    tokenizer = load_tokenizer(tower.config.base_model)

    def encode(texts: list[str]) -> np.ndarray:
        return encode_texts(tower, tokenizer, list(texts), tower.config.max_length).numpy()

    return encode


def with_fallback(primary: Mapping[str, list[str]], fallback: Mapping[str, list[str]]) -> Rankings:
    """``primary`` where it has results, else ``fallback`` (e.g. BM25 for queries with no embedding)."""
    return {q: list(primary.get(q) or fallback.get(q, [])) for q in dict.fromkeys([*primary, *fallback])}


def write_served(rankings: Mapping[str, Mapping[str, list[str]]], path: str | Path) -> Path:
    """Write ``{arm: {query: [pin_id...]}}`` as ``served.parquet``: ``arm, query, pin_ids: list<string>``."""
    arms, qs, lists = [], [], []
    for arm, ranking in rankings.items():
        for q, pins in ranking.items():
            arms.append(arm)
            qs.append(q)
            lists.append(list(pins))
    table = pa.table({"arm": arms, "query": qs, "pin_ids": pa.array(lists, type=pa.list_(pa.string()))})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
    return path


def read_served(path: str | Path) -> dict[str, Rankings]:
    """Read ``served.parquet`` back into ``{arm: {query: [pin_id...]}}``."""
    t = pq.read_table(path)
    missing = [c for c in ("arm", "query", "pin_ids") if c not in t.column_names]
    if missing:
        from abtest.logs import LogValidationError

        raise LogValidationError(path, f"missing column; expected arm, query, pin_ids, found {t.column_names}",
                                 column=missing[0])
    out: dict[str, Rankings] = {}
    for arm, q, pins in zip(*(t.column(c).to_pylist() for c in ("arm", "query", "pin_ids")), strict=True):
        out.setdefault(arm, {})[q] = list(pins or [])
    return out
