"""Redis connections for the feature store, with errors that say what to run.

The connection string is Feast's format, ``host:port[,password=...][,db=N][,ssl=true]`` (a
cluster lists several ``host:port``). ``SEARCHSAGE_REDIS`` overrides it; the default is
``localhost:6379``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

from encoders.featurestore.redis_server import RedisUnavailable

#: Environment variable holding the Redis connection string of the online store.
REDIS_ENV = "SEARCHSAGE_REDIS"
DEFAULT_CONNECTION = "localhost:6379"


class RedisAuthError(RedisUnavailable):
    """Redis answered but refused the password (or needs one)."""


@dataclass(frozen=True)
class RedisTarget:
    """A parsed connection string: nodes ``[(host, port)]`` and client keyword arguments."""

    nodes: list[tuple[str, int]]
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return ",".join(f"{h}:{p}" for h, p in self.nodes)


def resolve_connection_string(value: str | None = None) -> str:
    """``value`` unless empty or an unexpanded ``${...}``; else ``$SEARCHSAGE_REDIS``; else localhost:6379."""
    if value and "${" not in value:
        return value
    return os.environ.get(REDIS_ENV) or DEFAULT_CONNECTION


def parse_connection_string(conn: str) -> RedisTarget:
    """Split Feast's ``host:port,key=value`` format (values JSON-decoded like Feast does)."""
    nodes: list[tuple[str, int]] = []
    params: dict[str, Any] = {}
    for part in (p.strip() for p in conn.split(",") if p.strip()):
        if "=" in part:
            k, v = part.split("=", 1)
            try:
                params[k] = json.loads(v)
            except json.JSONDecodeError:
                params[k] = v
        else:
            host, _, port = part.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"Redis connection string {conn!r}: expected host:port, got {part!r}")
            nodes.append((host, int(port)))
    if not nodes:
        raise ValueError(f"Redis connection string {conn!r} names no host:port")
    if "password" in params:
        params["password"] = str(params["password"])
    return RedisTarget(nodes, params)


def explain_failure(target: RedisTarget, exc: BaseException) -> RedisUnavailable:
    """Turn a redis-py exception into a :class:`RedisUnavailable` that says what to do."""
    import redis

    host, port = target.nodes[0]
    msg = str(exc).lower()
    if isinstance(exc, redis.AuthenticationError) or "noauth" in msg or "wrongpass" in msg or "auth" in msg:
        return RedisAuthError(
            f"Redis at {target.where} refused authentication ({exc}); put the right password in "
            f"{REDIS_ENV}, e.g. {REDIS_ENV}='{host}:{port},password=...'"
        )
    return RedisUnavailable(
        f"cannot reach Redis at {target.where} ({exc}); start one with "
        f"`searchsage redis start --port {port}` or point {REDIS_ENV} at a running server "
        f"(now {os.environ.get(REDIS_ENV, 'unset, default ' + DEFAULT_CONNECTION)})"
    )


def connect(conn: str, cluster: bool = False, check: bool = True) -> Any:
    """A redis-py client (``Redis`` or ``RedisCluster``) for ``conn``; ``check`` PINGs it first."""
    import redis
    from redis.backoff import ExponentialBackoff
    from redis.cluster import ClusterNode, RedisCluster
    from redis.retry import Retry

    target = parse_connection_string(conn)
    # redis-py's default retries back off for seconds on a refused connection; fail fast instead.
    kwargs: dict[str, Any] = {"socket_connect_timeout": 3, **target.params}
    if not cluster:
        kwargs.setdefault("retry", Retry(ExponentialBackoff(cap=0.2, base=0.02), 2))
    try:
        if cluster:
            client: Any = RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in target.nodes], **kwargs)
        else:
            host, port = target.nodes[0]
            client = redis.Redis(host=host, port=port, **kwargs)
        if check:
            client.ping()
    except (redis.ConnectionError, redis.AuthenticationError, redis.ResponseError, OSError) as exc:
        raise explain_failure(target, exc) from exc
    return client
