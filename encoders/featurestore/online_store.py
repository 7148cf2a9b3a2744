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
* its client comes from the project's one factory, :func:`encoders.featurestore.connection.connect`
  (plain server, Redis Cluster or Sentinel, as ``redis_type`` says);
* an unreachable server or a refused password raises :class:`RedisUnavailable` naming the
  host, port and the command to run, instead of a redis-py traceback;
* ``feast apply`` refuses a bundle whose embedding width differs from a feature view's
  ``embedding`` vector length (see :func:`encoders.featurestore.udfs.check_bundle_dim`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, RedisType
from pydantic import field_validator, model_validator

from encoders.featurestore.connection import connect, resolve_connection_string, split_redis_type

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
    """Feast's Redis online store with friendly connection errors and a D check at apply."""

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
