"""Vector retrieval on Redis: the query engine's HNSW index over a raw float32 copy of a view's vector.

Feast keeps each feature as a serialized protobuf ``Value`` in a hash field, which the Redis query
engine (RediSearch: in Redis Stack, and in Redis 8 builds with the modules) cannot index. For a view
whose vector field is declared for vector search (``Field(..., vector_index=True,
vector_length=D, vector_search_metric=...)``) our writers therefore add one more field to the same
hash: :func:`vector_blob_field` (``_vec:<project>:<view>:<feature>``), the D float32 values raw
(little-endian, ``4 * D`` bytes). The plugin's ``online_write_batch`` and the fast path
(:meth:`EmbeddingStore.write_encoded`) both write it; views without ``vector_index`` get no extra
field. The hash keys, Feast's own fields and what stock Feast reads are unchanged.

One index per view (:func:`index_name`)::

    FT.CREATE searchsage:vec:<project>:<view>:<feature> ON HASH PREFIX 1 <join-key prefix>
        SCHEMA _vec:<project>:<view>:<feature> AS vec VECTOR HNSW 10 TYPE FLOAT32 DIM D
        DISTANCE_METRIC IP|COSINE|L2 M 32 EF_CONSTRUCTION 200

and a search is ``FT.SEARCH idx "*=>[KNN k @vec $q EF_RUNTIME ef AS score]" ... DIALECT 2``.
The query engine cuts a key prefix at its first NUL byte, and Feast's keys have NULs early on, so
the index spans every hash whose key starts like a Feast v3 key; only hashes that hold the view's
own ``_vec:`` field have a vector, and only those can be returned.

Distances follow Feast's PostgreSQL (pgvector) online store, smaller = closer: ``L2`` the
Euclidean distance, ``cosine`` ``1 - cos``, ``inner_product`` the *negative* inner product.

:class:`encoders.localredis.stack.LocalRedisStack` starts a private Redis with the query engine for
tests and benchmarks.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from encoders.redis_records import codec

#: Feast ``vector_search_metric`` spellings -> the query engine's DISTANCE_METRIC.
METRICS = {"l2": "L2", "euclidean": "L2", "cosine": "COSINE", "inner_product": "IP", "ip": "IP", "dot": "IP",
           "dot_product": "IP"}
#: The metric of a vector field that declares none (Feast's own default for retrieval).
DEFAULT_METRIC = "L2"
#: HNSW graph parameters: the ranker's faiss index uses M=32 too (encoders.ranking.pin_index).
HNSW_M = 32
EF_CONSTRUCTION = 200
#: Candidate list size at search (at least k); the ranker's faiss efSearch is the same.
EF_RUNTIME = 128
#: Seconds :func:`ensure_index` waits for the background indexing of existing hashes.
INDEX_WAIT_S = 600.0
_ALIAS = "vec"


class VectorSearchUnavailable(RuntimeError):
    """The Redis server cannot run vector search (no query engine, Redis Cluster, ...); one line."""


class NotVectorIndexed(ValueError):
    """The feature view declares no field with ``vector_index=True``."""


@dataclass(frozen=True)
class VectorSpec:
    """What the index of one view's vector field is built from."""

    project: str
    view: str
    feature: str
    dim: int
    metric: str  # the query engine's name: IP | COSINE | L2
    join_keys: tuple[str, ...] = ("",)

    @property
    def blob_field(self) -> bytes:
        return f"_vec:{self.project}:{self.view}:{self.feature}".encode()

    @property
    def index(self) -> str:
        return f"searchsage:vec:{self.project}:{self.view}:{self.feature}"

    @property
    def key_prefix(self) -> bytes:
        return codec.entity_key_prefix(self.join_keys)


def redis_metric(name: str | None) -> str:
    """The query engine's DISTANCE_METRIC for a Feast metric name (``None`` -> :data:`DEFAULT_METRIC`)."""
    if not name:
        return DEFAULT_METRIC
    try:
        return METRICS[str(name).strip().lower()]
    except KeyError:
        raise ValueError(f"vector_search_metric {name!r} is not supported by Redis vector search; "
                         f"use one of L2, cosine, inner_product") from None


def vector_field(view: Any) -> Any | None:
    """The view's field declared with ``vector_index=True`` (None if none; more than one is refused)."""
    fields = [f for f in (getattr(view, "features", None) or []) if getattr(f, "vector_index", False)]
    if len(fields) > 1:
        raise ValueError(f"feature view {view.name!r} declares {len(fields)} vector_index fields "
                         f"({', '.join(f.name for f in fields)}); Feast allows one")
    return fields[0] if fields else None


def vector_spec(view: Any, project: str, view_name: str | None = None) -> VectorSpec | None:
    """The index spec of ``view`` (None when no field is declared for vector search).

    ``view_name`` overrides the view's name (Feast's versioned name when online versioning is on).
    """
    f = vector_field(view)
    if f is None:
        return None
    dim = int(getattr(f, "vector_length", 0) or 0)
    if dim < 1:
        raise ValueError(f"feature view {view.name!r}: vector field {f.name!r} has vector_index=True "
                         f"but no vector_length; declare Field(..., vector_length=D)")
    join_keys = tuple(getattr(view, "join_keys", None) or [c.name for c in getattr(view, "entity_columns", [])])
    return VectorSpec(project, view_name or view.name, f.name, dim, redis_metric(f.vector_search_metric),
                      join_keys or ("",))


def vector_blob_field(view: Any, project: str, view_name: str | None = None) -> bytes | None:
    """The hash field holding the raw float32 copy of ``view``'s vector, or None when the view
    declares no field for vector search (then writers add nothing). Used by every write path."""
    spec = vector_spec(view, project, view_name)
    return spec.blob_field if spec is not None else None


def blobs_from_values(values: Sequence[bytes | None], dim: int) -> list[bytes | None]:
    """Raw float32 blobs of serialized ``float_list_val`` Values (None where a value is missing or
    is not ``dim`` floats: such a row gets no vector and is not searchable)."""
    matrix, found = codec.decode_float_lists(values, dim, on_bad="miss")
    return [matrix[i].tobytes() if ok else None for i, ok in enumerate(found)]


# --- the index ------------------------------------------------------------------------------------


def _is_unknown_command(exc: BaseException) -> bool:
    msg = str(exc).lower()
    return "unknown command" in msg or "err unknown" in msg


def missing_engine(where: str, command: str = "FT.CREATE") -> VectorSearchUnavailable:
    return VectorSearchUnavailable(
        f"the Redis query engine (RediSearch, in Redis Stack / Redis 8) is not loaded on {where}; "
        f"{command} unknown. Run Redis Stack or Redis 8 with the search module for vector retrieval"
    )


def _check_client(client: Any) -> None:
    from encoders.redis_records.connection import is_cluster

    if is_cluster(client):
        raise VectorSearchUnavailable(
            "vector retrieval on Redis Cluster is not supported (the open-source query engine indexes one "
            "node); use a single Redis Stack / Redis 8 server or Sentinel for vector search"
        )


def _call(client: Any, where: str, *args: Any) -> Any:
    import redis

    try:
        return client.execute_command(*args)
    except redis.ResponseError as exc:
        if _is_unknown_command(exc):
            raise missing_engine(where, str(args[0])) from None
        raise


def _info(client: Any, where: str, index: str) -> dict[str, Any] | None:
    import redis

    try:
        raw = _call(client, where, "FT.INFO", index)
    except redis.ResponseError as exc:
        if "unknown index" in str(exc).lower() or "no such index" in str(exc).lower():
            return None
        raise
    return _pairs(raw)


def _pairs(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return {_s(k): v for k, v in raw.items()}
    return {_s(raw[i]): raw[i + 1] for i in range(0, len(raw) - 1, 2)}


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def _index_matches(info: dict[str, Any], spec: VectorSpec) -> bool:
    for attr in info.get("attributes") or []:
        a = _pairs(attr)
        if _s(a.get("identifier", "")) == spec.blob_field.decode():
            return (int(a.get("dim", 0)) == spec.dim and _s(a.get("distance_metric", "")).upper() == spec.metric
                    and _s(a.get("algorithm", "")).upper() == "HNSW")
    return False


def ensure_index(client: Any, spec: VectorSpec, where: str, *, wait_s: float = INDEX_WAIT_S) -> bool:
    """Create the view's index unless one with the same field, D and metric exists (one built for
    another D or metric is dropped — never its hashes — and rebuilt). Waits until the hashes already
    in Redis are indexed. Returns True when it created the index."""
    import redis

    _check_client(client)
    try:
        _create(client, spec, where)
    except redis.ResponseError as exc:
        if "already exists" not in str(exc).lower():
            raise
        info = _info(client, where, spec.index)
        if info is not None and _index_matches(info, spec):
            _wait_indexed(client, spec, where, wait_s)
            return False
        _call(client, where, "FT.DROPINDEX", spec.index)
        _create(client, spec, where)
    _wait_indexed(client, spec, where, wait_s)
    return True


def _create(client: Any, spec: VectorSpec, where: str) -> None:
    _call(client, where, "FT.CREATE", spec.index, "ON", "HASH", "PREFIX", 1, spec.key_prefix,
          "SCHEMA", spec.blob_field, "AS", _ALIAS, "VECTOR", "HNSW", 10, "TYPE", "FLOAT32", "DIM", spec.dim,
          "DISTANCE_METRIC", spec.metric, "M", HNSW_M, "EF_CONSTRUCTION", EF_CONSTRUCTION)


def _wait_indexed(client: Any, spec: VectorSpec, where: str, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        info = _info(client, where, spec.index) or {}
        if str(_s(info.get("indexing", 0))) in ("0", "0.0"):
            return
        if time.monotonic() > deadline:
            raise VectorSearchUnavailable(f"index {spec.index} on {where} is still indexing after {wait_s:.0f}s; "
                                          "retry the search later")
        time.sleep(0.05)


def drop_index(client: Any, spec: VectorSpec, where: str) -> bool:
    """Drop the view's index (the hashes stay). False when there was none or no query engine."""
    import redis

    try:
        _call(client, where, "FT.DROPINDEX", spec.index)
    except VectorSearchUnavailable:
        return False
    except redis.ResponseError:
        return False
    return True


def has_query_engine(client: Any) -> bool:
    """Whether the server knows ``FT._LIST`` (the query engine is loaded)."""
    import redis

    try:
        client.execute_command("FT._LIST")
    except redis.ResponseError as exc:
        if _is_unknown_command(exc):
            return False
        raise
    return True


def knn(client: Any, spec: VectorSpec, query: Sequence[float] | np.ndarray, k: int, where: str,
        ef_runtime: int | None = None) -> list[bytes]:
    """The Redis keys of the ``k`` nearest hashes to ``query``, nearest first.

    Only keys: the query engine cannot load the fields of a key with a NUL byte (Feast's keys have
    several), so callers read the rows and the float32 copy with ``HMGET``.
    """
    _check_client(client)
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if q.shape[0] != spec.dim:
        raise ValueError(f"query vector has {q.shape[0]} values but {spec.view}:{spec.feature} is {spec.dim}-d")
    if k < 1:
        return []
    ef = max(int(ef_runtime or EF_RUNTIME), k)
    raw = _call(client, where, "FT.SEARCH", spec.index, f"*=>[KNN {int(k)} @{_ALIAS} $q EF_RUNTIME {ef} AS score]",
                "PARAMS", 2, "q", q.tobytes(), "SORTBY", "score", "ASC", "NOCONTENT", "LIMIT", 0, int(k), "DIALECT", 2)
    return list(raw[1:])


def distances(metric: str, query: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Feast-style distances (smaller = closer, as pgvector) of the rows of ``matrix`` to ``query``,
    in float64: L2 Euclidean, COSINE ``1 - cos``, IP the negative inner product."""
    q = np.asarray(query, dtype=np.float64).reshape(-1)
    m = np.asarray(matrix, dtype=np.float64).reshape(-1, q.shape[0])
    if metric == "IP":
        return -(m @ q)
    if metric == "COSINE":
        norms = np.linalg.norm(m, axis=1) * np.linalg.norm(q)
        return 1.0 - (m @ q) / np.where(norms == 0, 1.0, norms)
    return np.sqrt(((m - q) ** 2).sum(axis=1))
