"""A reference ranker over the feature store: query vector -> HNSW candidates -> exact re-score.

1. ``get_online_features`` on ``query_vector`` (stored embedding, or embedded live for a query
   that was never materialised) — one call, any query;
2. a faiss ``IndexHNSWFlat`` (inner product) over the pin embeddings in the online store, cached
   beside the pin source as ``data/pin_index.faiss`` + ``.json`` and rebuilt when the pin source
   or the embeddings' model version changes;
3. the candidates' embeddings fetched with :meth:`EmbeddingStore.fetch` (one numpy array) and
   scored by dot product (cosine for the L2-normalised towers). Non-Redis online stores (the
   SQLite fallback) are read through stock ``get_online_features`` instead;
4. optionally (``rerank=STUDENT``) every candidate re-scored by the distilled relevance student
   (:class:`encoders.relevance.student.StudentScorer`, features read through Feast) and the top
   ``k`` taken by student grade; each hit keeps both scores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encoders.featurestore.embeddings import EmbeddingStore
from encoders.featurestore.sources import PINS_FILE

INDEX_FILE = "data/pin_index.faiss"


@dataclass
class Hit:
    """One result: ``score`` is the embedding (cosine) score; ``student`` the student's grade when reranked."""

    pin_id: str
    score: float
    text: str
    student: float | None = None


@dataclass
class RankResult:
    query: str
    vector_source: str
    model_version: str
    hits: list[Hit] = field(default_factory=list)
    reranker: str | None = None


class StockEmbeddingReader:
    """``fetch``/``fetch_with_versions`` through stock ``get_online_features`` — for online stores
    other than Redis (e.g. the SQLite fallback), where :class:`EmbeddingStore` does not apply."""

    def __init__(self, store: Any, view: Any, dim: int) -> None:
        self.store, self.view, self.dim = store, view, dim
        self.join_key = view.entity_columns[0].name

    def fetch_with_versions(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        resp = self.store.get_online_features(
            features=[f"{self.view.name}:embedding", f"{self.view.name}:model_version"],
            entity_rows=[{self.join_key: k} for k in keys]).to_dict()
        found = np.array([v is not None for v in resp["embedding"]], dtype=bool)
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        if found.any():
            out[found] = np.asarray([v for v in resp["embedding"] if v is not None], dtype=np.float32)
        return out, found, list(resp["model_version"])

    def fetch(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        matrix, found, _ = self.fetch_with_versions(keys)
        return matrix, found


def embedding_reader(store: Any, view_name: str, dim: int) -> Any:
    """:class:`EmbeddingStore` on Redis online stores, else :class:`StockEmbeddingReader`."""
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig

    view = store.get_feature_view(view_name)
    if isinstance(store.config.online_store, RedisOnlineStoreConfig):
        return EmbeddingStore.from_config(store.config, view, dim=dim)
    return StockEmbeddingReader(store, view, dim)


def query_vector(store: Any, query: str) -> tuple[np.ndarray, str, str]:
    """The ``(D,)`` float32 query vector, its source ('store'|'live') and model version."""
    from encoders.normalize import normalize_query

    resp = store.get_online_features(
        features=["query_vector:query_vector", "query_vector:query_vector_source",
                  "query_vector:query_vector_model_version"],
        entity_rows=[{"query": normalize_query(query), "query_text": query}],
    ).to_dict()
    vec = resp["query_vector"][0]
    if vec is None:
        raise LookupError(f"no vector for query {query!r}")
    return np.asarray(vec, dtype=np.float32), resp["query_vector_source"][0], resp["query_vector_model_version"][0]


def pin_index(repo: Path, pins: Any, pin_ids: list[str]) -> tuple[Any, list[str]]:
    """(faiss HNSW index, ids in index order) over the stored pin embeddings, cached in ``repo``."""
    import faiss

    src = repo / PINS_FILE
    idx_path, meta_path = repo / INDEX_FILE, (repo / INDEX_FILE).with_suffix(".json")
    matrix, found, versions = pins.fetch_with_versions(pin_ids)
    if not found.any():
        raise LookupError(f"none of the {len(pin_ids)} pins in {src} is in the online store; "
                          f"run `feast -c {repo} materialize-incremental <now>` first")
    ids = [p for p, f in zip(pin_ids, found, strict=True) if f]
    stamp = {"source_mtime": src.stat().st_mtime, "n": len(ids), "versions": sorted({str(v) for v in versions if v}),
             "dim": pins.dim}
    if idx_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("stamp") == stamp:
            return faiss.read_index(str(idx_path)), meta["ids"]
    index = faiss.IndexHNSWFlat(pins.dim, 32, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efSearch = 128
    index.add(np.ascontiguousarray(matrix[found]))
    faiss.write_index(index, str(idx_path))
    meta_path.write_text(json.dumps({"stamp": stamp, "ids": ids}))
    return index, ids


def rank_query(repo: str | Path, query: str, k: int = 10, candidates: int = 100,
               rerank: str | Path | None = None) -> RankResult:
    """Top-``k`` pins for ``query`` from the Feast repository at ``repo``.

    ``rerank``: a student directory (``searchsage relevance train-student``); the candidates are then
    ordered by the student's grade instead of the embedding score.
    """
    from feast import FeatureStore

    repo = Path(repo)
    src = repo / PINS_FILE
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found: add pins with encoders.featurestore.sources.append_pins")
    pin_table = pd.read_parquet(src, columns=["pin_id", "text"]).drop_duplicates("pin_id", keep="last")
    texts = dict(zip(pin_table["pin_id"].astype(str), pin_table["text"].astype(str), strict=True))
    store = FeatureStore(repo_path=str(repo))
    qvec, source, version = query_vector(store, query)
    from encoders.featurestore.udfs import declared_dim

    declared = declared_dim(store.get_feature_view("pin_embedding"))
    if declared is not None and qvec.shape[0] != declared:
        raise ValueError(f"query vector is {qvec.shape[0]}-d but pin embeddings are {declared}-d")
    pins = embedding_reader(store, "pin_embedding", qvec.shape[0])
    index, ids = pin_index(repo, pins, list(texts))
    _, cand = index.search(qvec[None, :], min(candidates, len(ids)))
    cand_ids = [ids[i] for i in cand[0] if i >= 0]
    cand_vecs, found = pins.fetch(cand_ids)  # fresh values from the online store
    scores = cand_vecs @ qvec
    scores[~found] = -np.inf
    if rerank is None:
        order = np.argsort(-scores)[:k]
        hits = [Hit(cand_ids[i], float(scores[i]), texts.get(cand_ids[i], "")) for i in order if found[i]]
        return RankResult(query, source, version, hits)
    return _rerank(store, repo, query, Path(rerank), k, RankResult(query, source, version), cand_ids, scores, texts)


def _rerank(store: Any, repo: Path, query: str, student_dir: Path, k: int, result: RankResult,
            cand_ids: list[str], scores: np.ndarray, texts: dict[str, str]) -> RankResult:
    """Score the found candidates with the student and keep the top ``k`` by student grade."""
    from encoders.normalize import normalize_query
    from encoders.relevance.features import FeastFeatureSource
    from encoders.relevance.student import StudentScorer

    keep = [i for i in range(len(cand_ids)) if np.isfinite(scores[i])]
    ids = [cand_ids[i] for i in keep]
    scorer = StudentScorer(student_dir, FeastFeatureSource(repo, store=store))
    grades = scorer.score([normalize_query(query)] * len(ids), ids, [texts.get(p, "") for p in ids])
    order = np.lexsort((-scores[keep], -grades))[:k]  # student grade, ties by embedding score
    result.hits = [Hit(ids[j], float(scores[keep[j]]), texts.get(ids[j], ""), float(grades[j])) for j in order]
    result.reranker = f"{student_dir} ({scorer.family})"
    return result
