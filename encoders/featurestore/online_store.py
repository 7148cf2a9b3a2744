"""Feast online store plugin: stock Redis records, env-configured connection, clear errors.

Selected in ``feature_store.yaml`` by its dotted path::

    online_store:
      type: encoders.featurestore.online_store.SearchSageRedisOnlineStore
      connection_string: ${SEARCHSAGE_REDIS}   # unset -> localhost:6379

It reads and writes exactly the records of Feast's ``RedisOnlineStore`` (it *is* one), so a
repository switched back to ``type: redis`` reads the same data. What it adds:

* the connection string falls back to ``$SEARCHSAGE_REDIS`` / ``localhost:6379`` when the
  YAML value is an unexpanded ``${...}``; a ``redis_type=redis_cluster`` (or ``redis_sentinel``)
  inside it sets ``redis_type`` (so ``SEARCHSAGE_REDIS`` alone can point at a cluster);
* its client comes from the project's one factory, :func:`encoders.redis_records.connection.connect`
  (plain server, Redis Cluster or Sentinel, as ``redis_type`` says);
* an unreachable server or a refused password raises :class:`RedisUnavailable` naming the
  host, port and the command to run, instead of a redis-py traceback;
* ``feast apply`` refuses a bundle whose embedding width differs from a feature view's
  ``embedding`` vector length (see :func:`encoders.featurestore.udfs.check_bundle_dim`);
* Feast's vector API, ``FeatureStore.retrieve_online_documents_v2``, on the Redis query engine's
  HNSW index (Redis Stack / Redis 8) for views with a ``Field(..., vector_index=True)``: writes add a
  raw float32 copy of that field to the hash, ``feast apply`` (or the first search) builds the index
  (see :mod:`encoders.redis_records.vector_search`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Literal

import numpy as np
from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, RedisType
from pydantic import field_validator, model_validator

from encoders.redis_records import vector_search as vs
from encoders.redis_records.connection import (
    connect,
    is_cluster,
    parse_connection_string,
    resolve_connection_string,
    split_redis_type,
)

PLUGIN_TYPE = "encoders.featurestore.online_store.SearchSageRedisOnlineStore"


class SearchSageRedisOnlineStoreConfig(RedisOnlineStoreConfig):
    """``RedisOnlineStoreConfig`` whose connection string defaults to ``$SEARCHSAGE_REDIS``."""

    type: Literal["encoders.featurestore.online_store.SearchSageRedisOnlineStore"] = PLUGIN_TYPE  # type: ignore[assignment]
    connection_string: str = ""

    @field_validator("connection_string", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> str:
        return resolve_connection_string(str(value) if value else None)

    @model_validator(mode="after")
    def _redis_type_from_connection_string(self) -> SearchSageRedisOnlineStoreConfig:
        """Move a ``redis_type=`` of the connection string into ``redis_type`` (Feast's own code
        reads the connection string too and would pass it to redis-py as an argument)."""
        conn, kind = split_redis_type(self.connection_string, self.redis_type)
        if conn != self.connection_string or kind != self.redis_type.value:
            object.__setattr__(self, "connection_string", conn)
            object.__setattr__(self, "redis_type", RedisType(kind))
        return self


class SearchSageRedisOnlineStore(RedisOnlineStore):
    """Feast's Redis online store with friendly connection errors, a D check at apply and vector search."""

    #: Indexes this process already ensured (index name, D, metric): a search then costs one round trip.
    _ensured: set[tuple[str, int, str]] | None = None

    def _get_client(self, online_store_config: RedisOnlineStoreConfig) -> Any:
        if not self._client:
            conn = resolve_connection_string(online_store_config.connection_string)
            # connect() PINGs once so a dead server or bad password fails here, clearly.
            self._client = connect(conn, online_store_config.redis_type,
                                   sentinel_master=online_store_config.sentinel_master)
        return self._client

    def update(
        self,
        config: Any,
        tables_to_delete: Sequence[Any],
        tables_to_keep: Sequence[Any],
        entities_to_delete: Sequence[Any],
        entities_to_keep: Sequence[Any],
        partial: bool,
    ) -> None:
        from encoders.featurestore.udfs import check_views_against_bundle

        check_views_against_bundle(tables_to_keep)
        super().update(config, tables_to_delete, tables_to_keep, entities_to_delete, entities_to_keep, partial)
        self._sync_vector_indexes(config, tables_to_delete, tables_to_keep)

    # --- vector retrieval (Redis query engine) ---------------------------------------------------
    @staticmethod
    def _where(config: Any) -> str:
        return parse_connection_string(resolve_connection_string(config.online_store.connection_string)).where

    @staticmethod
    def _spec(config: Any, table: Any) -> vs.VectorSpec | None:
        from feast.infra.online_stores.redis import _versioned_fv_name

        return vs.vector_spec(table, config.project, _versioned_fv_name(table, config))

    def _sync_vector_indexes(self, config: Any, deleted: Sequence[Any], kept: Sequence[Any]) -> None:
        """At ``feast apply``: build the index of every kept view with a ``vector_index`` field, drop
        those of deleted views. Without a query engine (or on a cluster) this warns in one line and
        applies anyway: reads and writes work, only the vector search will refuse."""
        keep = [s for s in (self._spec(config, t) for t in kept) if s is not None]
        drop = [s for s in (self._spec(config, t) for t in deleted) if s is not None]
        if not keep and not drop:
            return
        client = self._get_client(config.online_store)
        where = self._where(config)
        if is_cluster(client) or not vs.has_query_engine(client):
            if keep:
                reason = ("Redis Cluster is not supported for vector search" if is_cluster(client) else
                          str(vs.missing_engine(where, "FT._LIST")).split(". ")[0])
                print(f"warning: no vector index for {', '.join(s.view for s in keep)}: {reason}", file=sys.stderr)
            return
        for spec in drop:
            vs.drop_index(client, spec, where)
        for spec in keep:
            vs.ensure_index(client, spec, where)
            self._mark_ensured(spec)

    def _mark_ensured(self, spec: vs.VectorSpec) -> None:
        if self._ensured is None:
            self._ensured = set()
        self._ensured.add((spec.index, spec.dim, spec.metric))

    def online_write_batch(
        self,
        config: Any,
        table: Any,
        data: list[tuple[Any, dict[str, Any], datetime, datetime | None]],
        progress: Callable[[int], Any] | None,
    ) -> None:
        """Feast's write, then (views with a ``vector_index`` field) the raw float32 copy of the vector,
        taken from what is now stored: with ``skip_dedup: false`` a row Feast skipped as older keeps
        the copy of the value it kept."""
        super().online_write_batch(config, table, data, progress)
        spec = self._spec(config, table)
        if spec is None or not data:
            return
        from feast.infra.online_stores.helpers import _mmh3

        client = self._get_client(config.online_store)
        keys = list(dict.fromkeys(self._generate_redis_keys_for_entities(config, [row[0] for row in data])))
        emb_field = _mmh3(f"{spec.view}:{spec.feature}")
        with client.pipeline(transaction=False) as pipe:
            for k in keys:
                pipe.hget(k, emb_field)
            stored = pipe.execute()
        with client.pipeline(transaction=False) as pipe:
            for k, blob in zip(keys, vs.blobs_from_values(stored, spec.dim), strict=True):
                if blob is not None:
                    pipe.hset(k, spec.blob_field, blob)
                else:
                    pipe.hdel(k, spec.blob_field)
            pipe.execute()

    def delete_table(self, config: Any, table: Any) -> None:
        """Feast's delete, then the view's vector copies (in hashes other views still use) and index."""
        super().delete_table(config, table)
        spec = self._spec(config, table)
        if spec is None:
            return
        client = self._get_client(config.online_store)
        pattern = spec.key_prefix + b"*" + config.project.encode()
        with client.pipeline(transaction=False) as pipe:
            for k in client.scan_iter(pattern):
                pipe.hdel(k, spec.blob_field)
            pipe.execute()
        if not is_cluster(client):
            vs.drop_index(client, spec, self._where(config))
        if self._ensured:
            self._ensured = {e for e in self._ensured if e[0] != spec.index}

    def retrieve_online_documents_v2(
        self,
        config: Any,
        table: Any,
        requested_features: list[str],
        embedding: list[float] | None,
        top_k: int,
        distance_metric: str | None = None,
        query_string: str | None = None,
        filters: Any = None,
        include_feature_view_version_metadata: bool = False,
    ) -> list[tuple[datetime | None, Any, dict[str, Any] | None]]:
        """The ``top_k`` rows of ``table`` nearest to ``embedding`` by the Redis query engine's HNSW index:
        ``[(event time, EntityKey, {feature: Value, ..., "distance": Value(double_val)})]``, in entity-value
        order (the order FeatureStore's response needs to keep rows aligned; rank by ``distance``).

        ``distance`` as Feast's PostgreSQL store: Euclidean (L2), ``1 - cos`` (cosine) or the negative
        inner product (inner_product), computed from the stored float32 vector. The index is built at
        ``feast apply`` or here on first use. Keyword search (``query_string``) and ``filters`` are not
        supported."""
        from feast.infra.key_encoding_utils import deserialize_entity_key
        from feast.protos.feast.types.Value_pb2 import Value as ValueProto

        if query_string is not None or embedding is None:
            raise ValueError("Redis vector search takes a query vector; keyword search (query_string) is not supported")
        if filters is not None:
            raise ValueError("Redis vector search does not support metadata filters")
        spec = self._spec(config, table)
        if spec is None:
            raise vs.NotVectorIndexed(
                f"feature view {table.name!r} declares no vector field; declare the vector as "
                f"Field(name=..., dtype=Array(Float32), vector_length=D, vector_index=True, "
                f"vector_search_metric='inner_product'|'cosine'|'L2') and run `feast apply`"
            )
        if distance_metric and vs.redis_metric(distance_metric) != spec.metric:
            raise ValueError(f"{table.name}:{spec.feature} is indexed for {spec.metric}, not {distance_metric!r}; "
                             f"change its vector_search_metric and run `feast apply`")
        client = self._get_client(config.online_store)
        where = self._where(config)
        query = np.asarray(embedding, dtype=np.float32).reshape(-1)
        hits = self._knn(client, spec, query, top_k, where)
        if not hits:
            return []
        fv_name = spec.view
        req, hset_keys = self._generate_hset_keys_for_features(table, list(requested_features or []) or None,
                                                               fv_name_override=fv_name)
        with client.pipeline(transaction=False) as pipe:
            for key in hits:
                pipe.hmget(key, [*hset_keys, spec.blob_field])
            rows = pipe.execute()
        width = 4 * spec.dim
        blobs = [r[-1] if r[-1] is not None and len(r[-1]) == width else b"\0" * width for r in rows]
        dist = vs.distances(spec.metric, query, np.frombuffer(b"".join(blobs), dtype=np.float32))
        project = config.project.encode()
        out: list[tuple[datetime | None, Any, dict[str, Any] | None]] = []
        for key, values, d in zip(hits, rows, dist, strict=True):
            if values[-1] is None or values[-2] is None or not key.endswith(project):
                continue  # the row or its copy is gone since the search, or another project's key
            ts, feats = self._get_features_for_entity(values[:-1], fv_name, list(req))
            if feats is None:
                continue
            feats["distance"] = ValueProto(double_val=float(d))
            entity_key = deserialize_entity_key(key[: -len(project)],
                                                entity_key_serialization_version=config.entity_key_serialization_version)
            out.append((ts, entity_key, feats))
        # FeatureStore.retrieve_online_documents_v2 (Feast 0.67) pairs the i-th row's features with the
        # i-th entity in *sorted* entity order: rows in any other order come back with another row's
        # features and distance. Rows sorted as it sorts them stay aligned (sort by "distance" to rank).
        out.sort(key=lambda row: tuple(getattr(v, v.WhichOneof("val")) for v in row[1].entity_values))
        return out

    def _knn(self, client: Any, spec: vs.VectorSpec, query: Any, k: int, where: str) -> list[bytes]:
        import redis

        if (spec.index, spec.dim, spec.metric) not in (self._ensured or set()):
            vs.ensure_index(client, spec, where)
            self._mark_ensured(spec)
        try:
            return vs.knn(client, spec, query, k, where)
        except redis.ResponseError as exc:
            if "unknown index" not in str(exc).lower() and "no such index" not in str(exc).lower():
                raise
        vs.ensure_index(client, spec, where)  # dropped behind our back: build it again, once
        return vs.knn(client, spec, query, k, where)
