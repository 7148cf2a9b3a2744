"""Open the ``query_embedding`` records in Redis for the cache (the fast path, :mod:`encoders.redis_records`).

The client uses short socket timeouts and no client-side retries: the service's own
:class:`~encoders.serving.cache.CacheThrough` decides when to retry, so a dead Redis costs a
request at most one failed call (then none while degraded). Redis need not be up at start-up.

:meth:`QueryEmbeddingCache.lookup` applies the model-version rule
(:mod:`encoders.runtime.model_version`) and decides, per missing row, whether this service may
overwrite it; :meth:`QueryEmbeddingCache.write_if` writes only rows that did not change since
(compare-and-set on the ``model_version`` field, one Lua call per key). See docs/serving.md,
"Several versions on one store".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from encoders.featurestore.contract import QUERY_JOIN_KEY, QUERY_VIEW
from encoders.runtime.model_version import ModelVersion
from encoders.serving.config import ServeConfigError

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


def redis_client(conn: str, timeout_s: float = 0.5, redis_type: str | None = None,
                 sentinel_master: str | None = None) -> Any:
    """A redis-py client for ``host:port[,password=..][,db=N]`` or ``redis://`` URLs, from the
    project's client factory (:func:`encoders.redis_records.connection.connect`): a plain server, a
    Redis Cluster or a Sentinel-managed master as ``redis_type`` (or a ``redis_type=`` in ``conn``)
    says. Not checked now (Redis may be down at start-up); no client-side retries."""
    import redis

    from encoders.redis_records.connection import DEFAULT_SENTINEL_MASTER, connect

    try:
        return connect(conn, redis_type, check=False, timeout_s=timeout_s, retries=0,
                       sentinel_master=sentinel_master or DEFAULT_SENTINEL_MASTER)
    except ValueError as exc:
        raise ServeConfigError(str(exc)) from None  # the parser never quotes the password
    except redis.RedisError as exc:  # a cluster client asks its nodes for the slot map at once
        from encoders.redis_records.connection import explain_failure, parse_connection_string

        raise explain_failure(parse_connection_string(conn), exc) from None


def make_query_store(
    conn: str | None, dim: int, repo: Path | None = None, timeout_s: float = 0.5
) -> QueryEmbeddingCache:
    """A :class:`QueryEmbeddingCache` over ``EmbeddingStore`` on the ``query_embedding`` view.

    ``conn``: the connection string (``--redis``); with ``repo`` the project name, connection
    string and key TTL come from ``repo/feature_store.yaml`` instead.
    """
    from encoders.redis_records.connection import resolve_connection_string
    from encoders.redis_records.embeddings import EmbeddingStore

    project, ttl, redis_type, master = DEFAULT_PROJECT, None, None, None
    if repo is not None:
        settings = _repo_settings(repo)
        project = str(settings["project"])
        ttl = settings["online"].get("key_ttl_seconds")
        conn = conn or resolve_connection_string(settings["online"].get("connection_string"))
        redis_type, master = settings["online"].get("redis_type"), settings["online"].get("sentinel_master")
    if not conn:
        raise ServeConfigError("no Redis connection string: pass --redis host:port or --repo feature_repo")
    store = EmbeddingStore(
        client=redis_client(conn, timeout_s, redis_type, master), project=project, feature_view=QUERY_VIEW,
        join_key=QUERY_JOIN_KEY, dim=int(dim), key_ttl_seconds=ttl, connection=conn,
    )
    return QueryEmbeddingCache(store)


@dataclass
class LookupResult:
    """One lookup: ``matrix`` (N, D) float32 and ``found`` (N,) (rows this model may serve);
    for the misses, ``writable`` (N,) says whether this service may write the key and ``expect``
    holds the ``model_version`` bytes seen (``None``: absent) for the compare-and-set write.
    ``stale``: rows of another version; ``bad``: rows that did not decode; ``foreign``: stale rows
    left to the other live version."""

    matrix: np.ndarray
    found: np.ndarray
    writable: np.ndarray
    expect: list[bytes | None]
    stale: int = 0
    bad: int = 0
    foreign: int = 0


class QueryEmbeddingCache:
    """The service's view of the store: version-checked lookups and compare-and-set writes.

    Wraps an ``EmbeddingStore``; a row counts as found only when its ``model_version`` passes
    :func:`encoders.runtime.model_version.is_compatible` (fast path: equal encoded bytes).
    """

    def __init__(self, store: Any) -> None:
        from encoders.redis_records import codec
        from encoders.redis_records.connection import redact_secrets

        self.store = store
        self.dim = int(store.dim)
        self._codec = codec
        self._emb = codec.feature_field(store.feature_view, "embedding")
        self._mv = codec.feature_field(store.feature_view, "model_version")
        self._ts = codec.timestamp_field(store.feature_view)
        self._fields = [self._emb, self._mv, self._ts]
        self._expected: dict[str, bytes] = {}
        self._cas: Any = None
        self.connection = str(getattr(store, "connection", "") or "")
        self.address = redact_secrets(self.connection, self.connection)

    def _version_bytes(self, version: str) -> bytes:
        if version not in self._expected:
            self._expected[version] = self._codec.encode_string_value(version)
        return self._expected[version]

    def fetch(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.store.fetch(keys)

    def write(self, keys: Sequence[str], matrix: np.ndarray, model_version: str) -> object:
        return self.store.write(keys, matrix, model_version)

    def _decode(self, values: list[bytes | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(matrix, present, bad)``: a row that is not a float list of width D is ``bad``, not an error."""
        try:
            matrix, present = self._codec.decode_float_lists(values, self.dim)
            return matrix, present, np.zeros(len(values), dtype=bool)
        except ValueError:  # codec.RecordDecodeError: decode row by row, isolate the bad ones
            pass
        matrix = np.zeros((len(values), self.dim), dtype=np.float32)
        present = np.zeros(len(values), dtype=bool)
        bad = np.zeros(len(values), dtype=bool)
        for i, v in enumerate(values):
            try:
                row, ok = self._codec.decode_float_lists([v], self.dim)
            except ValueError:
                bad[i] = True
                continue
            matrix[i], present[i] = row[0], ok[0]
        return matrix, present, bad

    def lookup(self, keys: Sequence[str], version: ModelVersion | str, since: float) -> LookupResult:
        """Rows ``version`` may serve, and which misses it may overwrite.

        A miss is writable when the key is absent, its row did not decode, or it holds another
        version written before ``since`` (epoch seconds: this service's start — a leftover of an
        earlier deployment). A row of another version written since then belongs to a service
        running now and is left alone (``foreign``).
        """
        version = ModelVersion.parse(version)
        want = self._version_bytes(str(version))
        raw = self.store.fetch_raw(keys, self._fields)
        matrix, present, bad = self._decode([r[0] for r in raw])
        n = len(raw)
        found = np.zeros(n, dtype=bool)
        writable = np.zeros(n, dtype=bool)
        expect: list[bytes | None] = [None] * n
        stale = foreign = 0
        for i, (_, mv, ts) in enumerate(raw):
            expect[i] = mv or None
            if bad[i] or not present[i]:
                writable[i] = True
            elif mv == want or version.serves(_decode_string(mv)):
                found[i] = True
            else:
                stale += 1
                written = self._codec.decode_timestamp_seconds(ts) if ts else None
                if written is None or written < since:
                    writable[i] = True
                else:
                    foreign += 1
        matrix[~found] = 0.0
        return LookupResult(matrix, found, writable, expect, stale, int(bad.sum()), foreign)

    def fetch_current(
        self, keys: Sequence[str], model_version: str | ModelVersion
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """``(matrix (N, D) float32, found (N,) bool, stale)`` under the model-version rule."""
        r = self.lookup(keys, model_version, since=0.0)
        return r.matrix, r.found, r.stale

    def write_if(self, keys: Sequence[str], matrix: np.ndarray, model_version: str,
                 expect: Sequence[bytes | None]) -> int:
        """Write rows (the records stock Feast reads) only where the key's ``model_version`` field
        still holds ``expect`` (``None``: absent) or already holds ``model_version``; atomic per key.
        Returns how many rows were written (the others changed since the lookup)."""
        import redis

        from encoders.redis_records.connection import explain_failure, parse_connection_string

        m = np.asarray(matrix, dtype=np.float32)
        if m.ndim != 2 or m.shape != (len(keys), self.dim) or len(expect) != len(keys):
            raise ValueError(f"write_if: expected ({len(keys)}, {self.dim}) rows and {len(keys)} expectations, got "
                             f"{m.shape} and {len(expect)}")
        if self._cas is None:
            self._cas = self.store.client.register_script(_CAS_WRITE)
        rkeys = self.store.redis_keys(keys)
        values = self._codec.encode_float_list(m)
        mv = self._version_bytes(model_version)
        ts = self._codec.encode_timestamp(datetime.now(timezone.utc))
        ttl = int(self.store.key_ttl_seconds or 0)
        try:
            with self.store.client.pipeline(transaction=False) as pipe:
                for k, v, e in zip(rkeys, values, expect, strict=True):
                    self._cas(keys=[k], args=[self._mv, e or b"", self._ts, ts, self._emb, v, mv, ttl], client=pipe)
                replies = pipe.execute()
        except redis.ConnectionError as exc:
            raise explain_failure(parse_connection_string(self.connection or "localhost:6379"), exc) from exc
        return int(sum(int(r) for r in replies))


def _decode_string(raw: bytes | None) -> str | None:
    """The ``string_val`` of a serialized Feast ``Value`` (``None`` if it is not one)."""
    if not raw or raw[0] != 0x12:
        return None
    length = shift = 0
    i = 1
    while i < len(raw):
        b = raw[i]
        i += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    try:
        return raw[i : i + length].decode("utf-8") if i + length == len(raw) else None
    except UnicodeDecodeError:
        return None


#: KEYS[1] = key; ARGV = mv field, expected mv ('' = absent), ts field, ts, embedding field,
#: embedding, own mv, ttl. Writes only if the mv field still holds the expected value (or ours).
_CAS_WRITE = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local seen = cur or ''
if seen ~= ARGV[2] and seen ~= ARGV[7] then return 0 end
redis.call('HSET', KEYS[1], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[1], ARGV[7])
if tonumber(ARGV[8]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[8]) end
return 1
"""
