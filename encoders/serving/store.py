"""Open the ``query_embedding`` records in Redis for the cache (fast path of encoders.featurestore).

The client uses short socket timeouts and no client-side retries: the service's own
:class:`~encoders.serving.cache.CacheThrough` decides when to retry, so a dead Redis costs a
request at most one failed call (then none while degraded). Redis need not be up at start-up.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from encoders.serving.config import ServeConfigError

QUERY_VIEW = "query_embedding"
QUERY_JOIN_KEY = "query"
DEFAULT_PROJECT = "searchsage"


def _repo_settings(repo: Path) -> dict[str, Any]:
    import yaml

    path = Path(repo) / "feature_store.yaml"
    if not path.is_file():
        raise ServeConfigError(f"{path} does not exist (expected a Feast repository with feature_store.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    online = data.get("online_store") or {}
    if not isinstance(online, dict):
        raise ServeConfigError(f"{path}: online_store must be a mapping with a Redis connection_string")
    return {"project": data.get("project") or DEFAULT_PROJECT, "online": online}


def redis_client(conn: str, timeout_s: float = 0.5) -> Any:
    """A redis-py client for Feast's ``host:port[,password=..][,db=N]`` string, not yet connected."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from encoders.featurestore.connection import parse_connection_string

    try:
        target = parse_connection_string(conn)
    except ValueError as exc:
        raise ServeConfigError(str(exc)) from None
    host, port = target.nodes[0]
    kwargs = {"socket_connect_timeout": timeout_s, "socket_timeout": timeout_s, **target.params}
    return redis.Redis(host=host, port=port, retry=Retry(NoBackoff(), 0), **kwargs)


def make_query_store(
    conn: str | None, dim: int, repo: Path | None = None, timeout_s: float = 0.5
) -> QueryEmbeddingCache:
    """A :class:`QueryEmbeddingCache` over ``EmbeddingStore`` on the ``query_embedding`` view.

    ``conn``: the connection string (``--redis``); with ``repo`` the project name, connection
    string and key TTL come from ``repo/feature_store.yaml`` instead.
    """
    from encoders.featurestore.connection import resolve_connection_string
    from encoders.featurestore.embeddings import EmbeddingStore

    project, ttl = DEFAULT_PROJECT, None
    if repo is not None:
        settings = _repo_settings(repo)
        project = str(settings["project"])
        ttl = settings["online"].get("key_ttl_seconds")
        conn = conn or resolve_connection_string(settings["online"].get("connection_string"))
    if not conn:
        raise ServeConfigError("no Redis connection string: pass --redis host:port or --repo feature_repo")
    store = EmbeddingStore(
        client=redis_client(conn, timeout_s), project=project, feature_view=QUERY_VIEW,
        join_key=QUERY_JOIN_KEY, dim=int(dim), key_ttl_seconds=ttl, connection=conn,
    )
    return QueryEmbeddingCache(store)


class QueryEmbeddingCache:
    """The service's view of the store: ``fetch_current`` compares ``model_version`` bytes.

    Wraps an ``EmbeddingStore``; a row counts as found only when its ``model_version`` record
    equals the serving bundle's, compared as encoded bytes (no protobuf decoding per row).
    """

    def __init__(self, store: Any) -> None:
        from encoders.featurestore import codec

        self.store = store
        self.dim = int(store.dim)
        self._codec = codec
        self._fields = [
            codec.feature_field(store.feature_view, "embedding"),
            codec.feature_field(store.feature_view, "model_version"),
        ]
        self._expected: dict[str, bytes] = {}

    def fetch(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.store.fetch(keys)

    def write(self, keys: Sequence[str], matrix: np.ndarray, model_version: str) -> object:
        return self.store.write(keys, matrix, model_version)

    def fetch_current(
        self, keys: Sequence[str], model_versions: str | Sequence[str]
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """``(matrix (N, D) float32, found (N,) bool, stale)``: rows whose ``model_version`` is not
        one of ``model_versions`` count as misses (``stale`` of them)."""
        versions = (model_versions,) if isinstance(model_versions, str) else tuple(model_versions)
        want = set()
        for v in versions:
            if v not in self._expected:
                self._expected[v] = self._codec.encode_string_value(v)
            want.add(self._expected[v])
        raw = self.store.fetch_raw(keys, self._fields)
        matrix, found = self._codec.decode_float_lists([r[0] for r in raw], self.dim)
        current = np.fromiter((r[1] in want for r in raw), dtype=bool, count=len(raw))
        stale = int((found & ~current).sum())
        return matrix, found & current, stale
