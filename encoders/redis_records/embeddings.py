"""Ranker-facing numpy access to embedding feature views, on the records stock Feast reads/writes.

>>> store = EmbeddingStore.from_store(FeatureStore(repo_path="feature_repo"), feature_view="pin_embedding")
>>> matrix, found = store.fetch(["pin-1", "pin-2"])      # (2, D) float32, (2,) bool
>>> store.write(["pin-3"], vectors, model_version="abc")  # stock get_online_features reads it

``fetch`` reads the ``float_list_val`` bytes of every key in one server-side Lua loop (one Redis
node) or a pipeline of ``HMGET`` (Redis Cluster: keys live in different slots) and parses them
with numpy; missing keys, and rows that do not decode as D floats, come back as zero rows with
``found=False``. ``write`` builds the same bytes with numpy and, like Feast's own writer, either
overwrites (``skip_dedup: true``: one pipelined ``HSET`` per key) or keeps whichever row has the
newer event time (``skip_dedup: false``, Feast's default: an atomic compare-and-set per key).

No Feast import: a ``FeatureStore``, its ``RepoConfig`` and a ``FeatureView`` are read by duck typing
(:meth:`EmbeddingStore.from_store` / :meth:`EmbeddingStore.from_config`), the records by :mod:`.codec`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import numpy as np

from encoders.featurestore.contract import EMBEDDING_FIELD, MODEL_VERSION_FIELD, QUERY_VIEW, declared_dim
from encoders.redis_records import codec
from encoders.redis_records.connection import (
    DEFAULT_SENTINEL_MASTER,
    connect,
    explain_failure,
    is_cluster,
    parse_connection_string,
    register_script,
    resolve_connection_string,
)
from encoders.redis_records.vector_search import blobs_from_values, vector_blob_field

if TYPE_CHECKING:  # the runtime package imports onnxruntime; the rule itself is imported when used
    from encoders.runtime.model_version import ModelVersion

#: Rows per Redis pipeline round trip for reads and writes.
PIPELINE_ROWS = 4096


class FeatureViewNotFound(LookupError):
    """The feature view is not in the repository's registry (``feast apply`` not run?)."""


@dataclass
class EmbeddingStore:
    """Read/write ``embedding`` (Array(Float32), length ``dim``) + ``model_version`` of one view.

    ``project`` and ``feature_view`` name the Feast records; ``join_key`` is the entity's only
    join key; ``value_type`` is :data:`codec.VALUE_TYPE_STRING` or ``VALUE_TYPE_INT64``.
    ``skip_dedup`` is the online store's setting: ``True`` = a write overwrites (last write wins),
    ``False`` = a row is written only if its event time is newer than the stored one (Feast's rule,
    here atomic per key). :meth:`from_config` takes it from ``feature_store.yaml`` (Feast's default:
    ``False``); built directly, the store overwrites. ``connection`` (may hold a password) is kept
    out of ``repr``.
    """

    client: Any
    project: str
    feature_view: str
    join_key: str
    dim: int
    value_type: int = codec.VALUE_TYPE_STRING
    key_ttl_seconds: int | None = None
    connection: str = field(default="", repr=False)
    skip_dedup: bool = True
    #: Hash field for the raw float32 copy of ``embedding`` that the Redis query engine indexes
    #: (:func:`encoders.redis_records.vector_search.vector_blob_field`); None = write no copy.
    vector_field: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._keys = codec.EntityKeyEncoder(self.join_key, self.project, self.value_type)
        self._emb_field = codec.feature_field(self.feature_view, EMBEDDING_FIELD)
        self._mv_field = codec.feature_field(self.feature_view, MODEL_VERSION_FIELD)
        self._ts_field = codec.timestamp_field(self.feature_view)
        self._script: Any = None
        self._newer_script: Any = None

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_store(cls, store: Any, feature_view: str = QUERY_VIEW, dim: int | None = None) -> EmbeddingStore:
        """Open ``feature_view`` of an applied repository: ``store`` is its ``feast.FeatureStore``
        (``FeatureStore(repo_path="feature_repo")``: ``feature_store.yaml`` + the registry)."""
        repo_path = getattr(store, "repo_path", "the repository")
        try:
            view = store.get_feature_view(feature_view)
        except Exception as exc:
            raise FeatureViewNotFound(
                f"feature view {feature_view!r} not found in the registry of {repo_path} ({exc}); "
                f"run `feast -c {repo_path} apply` first"
            ) from exc
        return cls.from_config(store.config, view, dim=dim)

    @classmethod
    def from_config(cls, config: Any, view: Any, dim: int | None = None, client: Any = None) -> EmbeddingStore:
        """Build from a Feast ``RepoConfig`` and a ``FeatureView`` object."""
        online = config.online_store
        conn = resolve_connection_string(getattr(online, "connection_string", None))
        if len(view.entity_columns) != 1:
            raise ValueError(f"feature view {view.name!r} must have exactly one join key, has {view.entity_columns}")
        col = view.entity_columns[0]
        vt = col.dtype.to_value_type()  # a feast ValueType: its numbers are the codec's
        value_type = int(getattr(vt, "value", vt))
        if value_type not in (codec.VALUE_TYPE_STRING, codec.VALUE_TYPE_INT64):
            raise ValueError(f"feature view {view.name!r}: join key {col.name!r} must be String or Int64, is {vt}")
        declared = declared_dim(view)
        width = dim or declared
        if width is None:
            raise ValueError(f"feature view {view.name!r} declares no embedding vector_length; pass dim=")
        if dim is not None and declared is not None and dim != declared:
            raise ValueError(f"dim={dim} but feature view {view.name!r} declares vector_length={declared}")
        if client is None:
            client = connect(conn, getattr(online, "redis_type", None),
                             sentinel_master=getattr(online, "sentinel_master", None) or DEFAULT_SENTINEL_MASTER)
        return cls(
            client=client, project=config.project, feature_view=view.name, join_key=col.name, dim=width,
            value_type=value_type, key_ttl_seconds=getattr(online, "key_ttl_seconds", None), connection=conn,
            skip_dedup=bool(getattr(online, "skip_dedup", False)),
            vector_field=vector_blob_field(view, config.project),
        )

    # --- keys ----------------------------------------------------------------------------------
    def redis_keys(self, keys: Sequence[str | int]) -> list[bytes]:
        """Feast's Redis key (serialized entity key + project) for each entity value."""
        return self._keys.encode(keys)

    def _run(self, fn: Any) -> Any:
        import redis

        try:
            return fn()
        except (redis.ConnectionError, redis.AuthenticationError, redis.exceptions.ClusterDownError) as exc:
            raise explain_failure(parse_connection_string(self.connection or "localhost:6379"), exc) from exc
        except redis.exceptions.RedisClusterException as exc:  # "Redis Cluster cannot be connected"
            if "connect" not in str(exc).lower():
                raise
            raise explain_failure(parse_connection_string(self.connection or "localhost:6379"), exc) from exc

    # --- read ----------------------------------------------------------------------------------
    def fetch(self, keys: Sequence[str | int], expect_version: str | ModelVersion | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """Embeddings of ``keys``: ``(N, dim) float32`` and ``found`` ``(N,) bool``.

        Rows of keys that are absent (never written, expired, or written for another view) are
        zeros with ``found=False``, and so are rows whose value does not decode as ``dim`` floats
        (another D, another type, corrupt bytes): one bad row never fails the lookup.
        Values are bit-identical to ``get_online_features``.

        ``expect_version``: the model the rows are for. A row whose ``model_version`` is not
        compatible with it under THE rule (:func:`encoders.runtime.model_version.is_compatible`:
        every part equal; a row without a version never is) counts as not found too (zeros,
        ``found=False``). ``None`` (default): rows are returned whatever version wrote them.
        """
        if expect_version is None:
            raw = self.fetch_raw(keys, [self._emb_field])
            return codec.decode_float_lists([r[0] for r in raw], self.dim, on_bad="miss")
        matrix, found, _ = self.fetch_with_versions(keys, expect_version)
        return matrix, found

    def fetch_with_versions(self, keys: Sequence[str | int], expect_version: str | ModelVersion | None = None
                            ) -> tuple[np.ndarray, np.ndarray, list[str | None]]:
        """Like :meth:`fetch`, plus each row's stored ``model_version`` (None when missing).

        With ``expect_version``, rows of an incompatible version are ``found=False`` with zero
        vectors, and ``versions`` still says what is stored (so a caller can count stale rows).
        """
        raw = self.fetch_raw(keys, [self._emb_field, self._mv_field])
        matrix, found = codec.decode_float_lists([r[0] for r in raw], self.dim, on_bad="miss")
        versions = [codec.decode_string_value(r[1]) for r in raw]
        if expect_version is not None:
            from encoders.runtime.model_version import ModelVersion

            want = ModelVersion.parse(expect_version)
            want_bytes = codec.encode_string_value(str(want))
            current = np.fromiter((r[1] == want_bytes or want.serves(v) for r, v in zip(raw, versions, strict=True)),
                                  dtype=bool, count=len(raw))
            stale = found & ~current
            if stale.any():
                matrix[stale] = 0.0
                found = found & current
        return matrix, found, versions

    def fetch_raw(self, keys: Sequence[str | int], fields: list[bytes]) -> list[list[bytes | None]]:
        """One ``HMGET`` reply per key for the given hash ``fields``.

        On a single Redis node this is one ``EVALSHA`` per :data:`PIPELINE_ROWS` keys (a server-side
        loop of ``HMGET``; one reply to parse instead of N); on a cluster, a pipeline of ``HMGET``.
        """
        rkeys = self.redis_keys(keys)
        if not is_cluster(self.client):
            return self._run(lambda: self._fetch_lua(rkeys, fields))

        def go() -> list[list[bytes | None]]:
            out: list[list[bytes | None]] = []
            for start in range(0, len(rkeys), PIPELINE_ROWS):
                with self.client.pipeline(transaction=False) as pipe:
                    for k in rkeys[start : start + PIPELINE_ROWS]:
                        pipe.execute_command("HMGET", k, *fields)
                    out.extend(pipe.execute())
            return out

        return self._run(go)

    def _fetch_lua(self, rkeys: list[bytes], fields: list[bytes]) -> list[list[bytes | None]]:
        if self._script is None:
            self._script = self.client.register_script(_HMGET_MANY)
        nf = len(fields)
        out: list[list[bytes | None]] = []
        for start in range(0, len(rkeys), PIPELINE_ROWS):
            flat = self._script(keys=rkeys[start : start + PIPELINE_ROWS], args=fields)
            out.extend([flat[i : i + nf] for i in range(0, len(flat), nf)] if nf > 1 else [[v] for v in flat])
        return out

    # --- write ---------------------------------------------------------------------------------
    def write(self, keys: Sequence[str | int], matrix: np.ndarray, model_version: str | Sequence[str],
              event_timestamp: datetime | Sequence[datetime] | None = None) -> int:
        """Write rows that stock Feast reads: ``embedding``, ``model_version`` and the event time.

        ``matrix``: ``(N, dim)`` float32 (other float dtypes are cast). ``model_version``: one string
        or N strings. ``event_timestamp``: one datetime, N datetimes, or None (= now, UTC).
        Returns how many rows were written: N with ``skip_dedup`` (a re-write overwrites), else
        the rows whose event time is newer than the stored one (the others are left as they are).
        """
        m = np.asarray(matrix)
        if m.ndim != 2 or m.shape[1] != self.dim or m.shape[0] != len(keys):
            raise ValueError(
                f"{self.feature_view}: expected matrix of shape ({len(keys)}, {self.dim}), got {m.shape}"
            )
        n = len(keys)
        values = codec.encode_float_list(m.astype(np.float32, copy=False))
        if isinstance(model_version, str):
            mvs = [codec.encode_string_value(model_version)] * n
        else:
            mvs = [codec.encode_string_value(v) for v in model_version]
        if event_timestamp is None or isinstance(event_timestamp, datetime):
            ts = codec.encode_timestamp(event_timestamp or datetime.now(timezone.utc))
            tss = [ts] * n
        else:
            tss = [codec.encode_timestamp(t) for t in event_timestamp]
        return self.write_encoded(self.redis_keys(keys), values, mvs, tss)

    def write_encoded(self, rkeys: Sequence[bytes], values: Sequence[bytes], mvs: Sequence[bytes],
                      tss: Sequence[bytes]) -> int:
        """Write already-encoded records (used by the materialisation engine); returns rows written.

        ``skip_dedup``: pipelined ``HSET`` (+ ``EXPIRE``). Otherwise one compare-and-set script per
        key, pipelined: the row is written only if the stored ``_ts:<view>`` is absent or older
        (Feast's rule: an equal event time is skipped too), and no concurrent writer can slip in
        between the comparison and the write. Each key is one slot, so both work on a cluster.
        With :attr:`vector_field` set, each row also gets the raw float32 copy of its vector in that
        field (same command, so it is written exactly when the row is).
        """
        ef, mf, tf, ttl = self._emb_field, self._mv_field, self._ts_field, self.key_ttl_seconds
        vf = self.vector_field
        if not self.skip_dedup and self._newer_script is None:
            self._newer_script = register_script(self.client, _HSET_IF_NEWER)

        def go() -> int:
            written = 0
            for start in range(0, len(rkeys), PIPELINE_ROWS):
                stop = start + PIPELINE_ROWS
                rows = zip(rkeys[start:stop], values[start:stop], mvs[start:stop], tss[start:stop], strict=True)
                extra: list[list[bytes]] = ([[vf, b] if b is not None else [] for b in
                                             blobs_from_values(values[start:stop], self.dim)]
                                            if vf else [[]] * len(rkeys[start:stop]))
                with self.client.pipeline(transaction=False) as pipe:
                    if self.skip_dedup:
                        for (k, v, mv, t), x in zip(rows, extra, strict=True):
                            pipe.execute_command("HSET", k, tf, t, ef, v, mf, mv, *x)
                            if ttl:
                                pipe.execute_command("EXPIRE", k, ttl)
                        pipe.execute()
                        written += min(stop, len(rkeys)) - start
                    else:
                        for (k, v, mv, t), x in zip(rows, extra, strict=True):
                            self._newer_script(keys=[k], args=[tf, t, int(ttl or 0), ef, v, mf, mv, *x], client=pipe)
                        written += sum(int(r) for r in pipe.execute())
            return written

        return int(self._run(go))


#: KEYS[1] = key; ARGV = ts field, new Timestamp bytes, TTL (0 = none), then field/value pairs.
#: Writes (HSET ts + pairs, EXPIRE) only if the stored Timestamp is absent or older; returns 1/0.
#: Timestamps are protobuf ``seconds`` (field 1) / ``nanos`` (field 2) varints, compared as pairs.
_HSET_IF_NEWER = """
local function parts(b)
  local sec, nanos, i, n = 0, 0, 1, #b
  while i <= n do
    local tag = string.byte(b, i); i = i + 1
    local v, mul = 0, 1
    while i <= n do
      local c = string.byte(b, i); i = i + 1
      v = v + (c % 128) * mul; mul = mul * 128
      if c < 128 then break end
    end
    if tag == 8 then sec = v elseif tag == 16 then nanos = v end
  end
  if sec >= 9223372036854775808 then sec = sec - 18446744073709551616 end
  return sec, nanos
end
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and #cur > 0 then
  local cs, cn = parts(cur)
  local ns, nn = parts(ARGV[2])
  if ns < cs or (ns == cs and nn <= cn) then return 0 end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2], unpack(ARGV, 4))
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return 1
"""


#: KEYS = Redis keys, ARGV = hash fields; returns the HMGET replies flattened (nil for missing).
_HMGET_MANY = """
local out, n, nf = {}, 0, #ARGV
for i = 1, #KEYS do
  local r = redis.call('HMGET', KEYS[i], unpack(ARGV))
  for j = 1, nf do n = n + 1; out[n] = r[j] end
end
return out
"""

