"""A reference ranker over the feature store: query vector -> HNSW candidates -> exact re-score.

:class:`Ranker` opens a repository once and answers each query with

1. one query-vector fetch: on Redis, the stored ``query_embedding`` through
   :meth:`EmbeddingStore.fetch_with_versions` and, when the query was never materialised, the
   bundle's query tower in this process — exactly what the ``query_vector`` on-demand view returns;
   elsewhere (the SQLite fallback) one stock ``get_online_features`` call on ``query_vector``;
2. one search of a faiss ``IndexHNSWFlat`` (inner product) over the pin embeddings, built once per
   pin-embedding version and persisted beside the repository's data (:mod:`.pin_index`); a new
   version (a materialisation, a changed pin source) is noticed without touching Redis;
3. one fetch of the candidates' current embeddings (:meth:`EmbeddingStore.fetch`, one numpy array;
   stock ``get_online_features`` on non-Redis online stores), scored by dot product (cosine for the
   L2-normalised towers);
4. optionally (``rerank=``, any :class:`Reranker`) every candidate re-scored and the top ``k`` taken
   by that grade; each hit keeps both scores. The relevance student's reranker
   (:class:`encoders.relevance.rerank.StudentReranker`) lives with the relevance model, above this
   package: the feature store knows only the :class:`Reranker` shape.

:meth:`Ranker.rank_user` is the homefeed counterpart: step 1 is the user's stored ``user_embedding``
(materialised by the exported user tower; never computed here), steps 2–3 are the same pin index and
re-score. A user without a stored vector is a :class:`LookupError` naming what to run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from encoders.featurestore.contract import (
    PIN_VIEW,
    QUERY_VECTOR_VIEW,
    QUERY_VIEW,
    USER_JOIN_KEY,
    USER_VIEW,
    USERS_SOURCE,
    declared_dim,
)
from encoders.featurestore.sources import PINS_FILE
from encoders.ranking.pin_index import PinIndex, load_or_build, pin_embedding_version
from encoders.redis_records.embeddings import EmbeddingStore


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


class Reranker(Protocol):
    """Grades candidates of one query (higher is better); ``name`` describes it once it has graded."""

    @property
    def name(self) -> str: ...

    def grades(self, query: str, pin_ids: list[str], texts: list[str]) -> np.ndarray:
        """``(len(pin_ids),)`` grades, one per candidate."""
        ...


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
    """The ``(D,)`` float32 query vector, its source ('store'|'live') and model version (stock Feast)."""
    from encoders.normalize import normalize_query

    resp = store.get_online_features(
        features=[f"{QUERY_VECTOR_VIEW}:query_vector", f"{QUERY_VECTOR_VIEW}:query_vector_source",
                  f"{QUERY_VECTOR_VIEW}:query_vector_model_version"],
        entity_rows=[{"query": normalize_query(query), "query_text": query}],
    ).to_dict()
    vec = resp["query_vector"][0]
    if vec is None:
        raise LookupError(f"no vector for query {query!r}")
    return np.asarray(vec, dtype=np.float32), resp["query_vector_source"][0], resp["query_vector_model_version"][0]


class Ranker:
    """A ranker over the Feast repository at ``repo``; keep one per process and call :meth:`rank`."""

    def __init__(self, repo: str | Path, store: Any = None) -> None:
        from feast import FeatureStore

        self.repo = Path(repo)
        if not (self.repo / PINS_FILE).is_file():
            raise FileNotFoundError(f"{self.repo / PINS_FILE} not found: add your pins with "
                                    f"`searchsage feast ingest --repo {self.repo} --pins FILE`, then materialise")
        self.store = store if store is not None else FeatureStore(repo_path=str(self.repo))
        view = self.store.get_feature_view(PIN_VIEW)
        self.dim = declared_dim(view)
        if self.dim is None:
            raise ValueError(f"feature view {PIN_VIEW!r} of {self.repo} declares no embedding vector_length")
        self.pins = embedding_reader(self.store, PIN_VIEW, self.dim)
        self.queries = (EmbeddingStore.from_config(self.store.config, self.store.get_feature_view(QUERY_VIEW),
                                                   client=self.pins.client)
                        if isinstance(self.pins, EmbeddingStore) else None)
        self._index: PinIndex | None = None
        self._users: Any = None

    def index(self, rebuild: bool = False) -> PinIndex:
        """The ANN index of the current pin-embedding version (loaded or built once per version)."""
        version = pin_embedding_version(self.store, self.repo)
        if rebuild or self._index is None or self._index.version != version:
            self._index = load_or_build(self.repo, self.pins, version, rebuild=rebuild)
        return self._index

    def query_vector(self, query: str) -> tuple[np.ndarray, str, str]:
        """``(D,)`` float32 vector, source ('store'|'live'), model version — as the ``query_vector`` view."""
        if self.queries is None:
            vec, source, version = query_vector(self.store, query)
        else:
            import os

            from encoders.featurestore.udfs import BUNDLE_ENV, get_encoder
            from encoders.normalize import normalize_query

            # the one version rule of the query_vector view: with a bundle, a stored row of another
            # version is stale (encoded live); without one, stored rows are served as they are
            enc = get_encoder("query") if os.environ.get(BUNDLE_ENV) else None
            expect = enc.model_version if enc is not None else None
            matrix, found, versions = self.queries.fetch_with_versions([normalize_query(query)], expect_version=expect)
            if found[0]:
                vec, source, version = matrix[0], "store", str(versions[0])
            else:
                enc = enc if enc is not None else get_encoder("query")
                vec, source, version = np.asarray(enc.encode([query])[0], dtype=np.float32), "live", enc.model_version
        if vec.shape[0] != self.dim:
            raise ValueError(f"query vector is {vec.shape[0]}-d but pin embeddings are {self.dim}-d")
        return vec, source, version

    def _candidates(self, vec: np.ndarray, candidates: int) -> tuple[list[str], np.ndarray, dict[str, str]]:
        """HNSW candidates of ``vec``, their current online scores (``-inf`` when gone) and the pin texts."""
        index = self.index()
        cand_ids = index.search(vec, candidates)
        cand_vecs, found = self.pins.fetch(cand_ids)  # current values from the online store
        scores = cand_vecs @ vec
        scores[~found] = -np.inf
        return cand_ids, scores, index.texts

    @staticmethod
    def _top(cand_ids: list[str], scores: np.ndarray, texts: dict[str, str], k: int) -> list[Hit]:
        order = np.argsort(-scores, kind="stable")[:k]
        return [Hit(cand_ids[i], float(scores[i]), texts.get(cand_ids[i], "")) for i in order if np.isfinite(scores[i])]

    def rank(self, query: str, k: int = 10, candidates: int = 100, rerank: Reranker | None = None) -> RankResult:
        """Top-``k`` pins for ``query``; ``rerank``: a :class:`Reranker` whose grade then orders the
        candidates instead of the embedding score."""
        qvec, source, version = self.query_vector(query)
        cand_ids, scores, texts = self._candidates(qvec, candidates)
        if rerank is None:
            return RankResult(query, source, version, self._top(cand_ids, scores, texts, k))
        return _rerank(rerank, query, k, RankResult(query, source, version), cand_ids, scores, texts)

    def user_vector(self, user_id: str) -> tuple[np.ndarray, str]:
        """The ``(D,)`` float32 stored ``user_embedding`` of ``user_id`` and its model version."""
        from feast.errors import FeatureViewNotFoundException

        try:
            view = self.store.get_feature_view(USER_VIEW)
        except FeatureViewNotFoundException:
            raise LookupError(
                f"{self.repo} has no {USER_VIEW!r} view: add a homefeed dataset with `searchsage feast ingest "
                f"--repo {self.repo} --homefeed DIR`, then `feast -c {self.repo} apply` and materialise it") from None
        if self._users is None:
            self._users = embedding_reader(self.store, USER_VIEW, declared_dim(view) or self.dim)
        matrix, found, versions = self._users.fetch_with_versions([str(user_id)])
        if not found[0]:
            known = (self.repo / USERS_SOURCE).is_file()
            raise LookupError(
                f"user {user_id!r} has no stored vector in {USER_VIEW!r}"
                + (f" ({USER_JOIN_KEY} not materialised: is it in {self.repo / USERS_SOURCE}? run the `feast "
                   f"materialize ... --views {USER_VIEW}` that `searchsage feast ingest --homefeed` printed)"
                   if known else ""))
        if matrix.shape[1] != self.dim:
            raise ValueError(f"user vector is {matrix.shape[1]}-d but pin embeddings are {self.dim}-d")
        return matrix[0], str(versions[0])

    def rank_user(self, user_id: str, k: int = 10, candidates: int = 100) -> RankResult:
        """Top-``k`` pins for ``user_id``'s stored homefeed vector (the same index and re-score as :meth:`rank`)."""
        vec, version = self.user_vector(user_id)
        cand_ids, scores, texts = self._candidates(vec, candidates)
        return RankResult(str(user_id), "store", version, self._top(cand_ids, scores, texts, k))


def rank_query(repo: str | Path, query: str, k: int = 10, candidates: int = 100,
               rerank: Reranker | None = None) -> RankResult:
    """Top-``k`` pins for ``query`` from the Feast repository at ``repo`` (a one-off :class:`Ranker`)."""
    return Ranker(repo).rank(query, k=k, candidates=candidates, rerank=rerank)


def _rerank(reranker: Reranker, query: str, k: int, result: RankResult, cand_ids: list[str], scores: np.ndarray,
            texts: dict[str, str]) -> RankResult:
    """Grade the found candidates with ``reranker`` and keep the top ``k`` by grade."""
    keep = [i for i in range(len(cand_ids)) if np.isfinite(scores[i])]
    ids = [cand_ids[i] for i in keep]
    grades = np.asarray(reranker.grades(query, ids, [texts.get(p, "") for p in ids]))
    order = np.lexsort((-scores[keep], -grades))[:k]  # grade, ties by embedding score
    result.hits = [Hit(ids[j], float(scores[keep[j]]), texts.get(ids[j], ""), float(grades[j])) for j in order]
    result.reranker = reranker.name
    return result
