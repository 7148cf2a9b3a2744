"""Redis connections for the feature store, with errors that say what to run.

The connection string is Feast's format, ``host:port[,password=...][,db=N][,ssl=true]`` (a
cluster lists several ``host:port``), or a URL ``redis://[user:password@]host:port[/db]``
(``rediss://`` for TLS). ``SEARCHSAGE_REDIS`` overrides it; the default is ``localhost:6379``.

:func:`connect` is the one client factory of the project (Feast online store plugin, the
materialisation engine, ``EmbeddingStore``, ``searchsage serve``). It honours Feast's
``redis_type``: ``redis`` (one server), ``redis_cluster`` (``RedisCluster`` over the listed
nodes) and ``redis_sentinel`` (the master that the listed sentinels name ``sentinel_master``).

Connection strings hold passwords: whatever prints one (errors, ``/health``, metrics, logs, CLI
output) passes it through :func:`redact_secrets` first.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

#: Environment variable holding the Redis connection string of the online store.
REDIS_ENV = "SEARCHSAGE_REDIS"
DEFAULT_CONNECTION = "localhost:6379"
#: The ``redis_type`` values of Feast's Redis online store, all supported by :func:`connect`.
REDIS_TYPES = ("redis", "redis_cluster", "redis_sentinel")
DEFAULT_SENTINEL_MASTER = "mymaster"
#: What a redacted secret is replaced with.
REDACTED = "***"
_URL_SCHEMES = ("redis", "rediss", "valkey", "valkeys")
# ``password=secret`` / ``'password': 'secret'`` / ``"password":"secret"`` in any text.
_PASSWORD_PAIR = re.compile(r"""(?i)(['"]?\b(?:password|passwd|pwd|requirepass)['"]?\s*[=:]\s*['"]?)([^\s,;&'"}\]]+)""")
# ``scheme://user:secret@`` (the userinfo of a URL).
_URL_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)")


class RedisUnavailable(RuntimeError):
    """Redis cannot be reached or started; the message says what to run."""


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

    def __repr__(self) -> str:  # never show the password
        params = {k: (REDACTED if k == "password" else v) for k, v in self.params.items()}
        return f"RedisTarget(nodes={self.nodes!r}, params={params!r})"


def redact_secrets(text: object, *connection_strings: str | None) -> str:
    """``text`` with every password replaced by ``***``: the one redaction used wherever a
    connection string (or an error that may quote one) is printed.

    Scrubs ``password=...`` pairs (Feast format, dict and JSON reprs) and the password of
    ``scheme://user:password@host`` URLs anywhere in ``text``; the passwords of the given
    ``connection_strings`` are also replaced wherever they appear verbatim (4+ characters).
    """
    out = _URL_USERINFO.sub(rf"\g<1>{REDACTED}\g<3>", str(text))
    out = _PASSWORD_PAIR.sub(rf"\g<1>{REDACTED}", out)
    for conn in connection_strings:
        secret = _password_of(conn) if conn else None
        if secret and len(secret) >= 4:
            out = out.replace(secret, REDACTED)
    return out


def _password_of(conn: str) -> str | None:
    try:
        pw = parse_connection_string(conn).params.get("password")
    except ValueError:
        m = _PASSWORD_PAIR.search(conn) or _URL_USERINFO.search(conn)
        return m.group(2) if m else None
    return None if pw is None else str(pw)


def resolve_connection_string(value: str | None = None) -> str:
    """``value`` unless empty or an unexpanded ``${...}``; else ``$SEARCHSAGE_REDIS``; else localhost:6379."""
    if value and "${" not in value:
        return value
    return os.environ.get(REDIS_ENV) or DEFAULT_CONNECTION


def parse_connection_string(conn: str) -> RedisTarget:
    """Split Feast's ``host:port,key=value`` format (values JSON-decoded like Feast does), or a
    ``redis://[user:password@]host[:port][/db][?key=value]`` URL. Errors never quote the password."""
    if "://" in conn:
        return _parse_url(conn)
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
                raise ValueError(
                    f"Redis connection string {redact_secrets(conn)!r}: expected host:port, got {redact_secrets(part)!r}"
                )
            nodes.append((host, int(port)))
    if not nodes:
        raise ValueError(f"Redis connection string {redact_secrets(conn)!r} names no host:port")
    if "password" in params:
        params["password"] = str(params["password"])
    return RedisTarget(nodes, params)


def _parse_url(conn: str) -> RedisTarget:
    shown = redact_secrets(conn)
    try:
        url = urlsplit(conn)
        port = url.port or 6379
    except ValueError:
        raise ValueError(f"Redis URL {shown!r} is malformed (expected redis://[user:password@]host:port[/db])") from None
    if url.scheme.lower() not in _URL_SCHEMES:
        raise ValueError(f"Redis URL {shown!r}: scheme must be one of {', '.join(_URL_SCHEMES)}")
    if not url.hostname:
        raise ValueError(f"Redis URL {shown!r} names no host")
    params: dict[str, Any] = {}
    for k, v in parse_qsl(url.query):
        try:
            params[k] = json.loads(v)
        except json.JSONDecodeError:
            params[k] = v
    if url.username:
        params["username"] = unquote(url.username)
    if url.password is not None:
        params["password"] = unquote(url.password)
    db = url.path.strip("/")
    if db:
        if not db.isdigit():
            raise ValueError(f"Redis URL {shown!r}: the path must be a database number, got {db!r}")
        params["db"] = int(db)
    if url.scheme.lower() in ("rediss", "valkeys"):
        params["ssl"] = True
    if "password" in params:
        params["password"] = str(params["password"])
    return RedisTarget([(url.hostname, port)], params)


def explain_failure(target: RedisTarget, exc: BaseException, redis_type: str | None = None) -> RedisUnavailable:
    """Turn a redis-py exception into a :class:`RedisUnavailable` that says what to do."""
    import redis

    host, port = target.nodes[0]
    msg = str(exc).lower()
    if isinstance(exc, redis.AuthenticationError) or "noauth" in msg or "wrongpass" in msg or "auth" in msg:
        return RedisAuthError(
            f"Redis at {target.where} refused authentication ({redact_secrets(exc)}); put the right password in "
            f"{REDIS_ENV}, e.g. {REDIS_ENV}='{host}:{port},password=...'"
        )
    kind = redis_type or ("redis" if len(target.nodes) == 1 else "redis_cluster")
    start = {
        "redis": f"start one with `searchsage redis start --port {port}`",
        "redis_cluster": f"check the cluster with `redis-cli -h {host} -p {port} cluster info`",
        "redis_sentinel": f"check the sentinels and sentinel_master with `redis-cli -h {host} -p {port} sentinel masters`",
    }[kind]
    return RedisUnavailable(
        f"cannot reach Redis at {target.where} ({redact_secrets(exc)}); {start} "
        f"or point {REDIS_ENV} at a running server "
        f"(now {redact_secrets(os.environ.get(REDIS_ENV, 'unset, default ' + DEFAULT_CONNECTION))})"
    )


def redis_type_of(value: object) -> str:
    """``"redis"``, ``"redis_cluster"`` or ``"redis_sentinel"`` from a string or Feast's ``RedisType``;
    anything else is a ``ValueError`` naming what is supported."""
    text = str(getattr(value, "value", value) or "redis").strip().lower()
    text = text.rpartition(".")[2]  # "RedisType.redis_cluster"
    if text not in REDIS_TYPES:
        raise ValueError(f"redis_type {value!r} is not supported; use one of {', '.join(REDIS_TYPES)}")
    return text


def split_redis_type(conn: str, configured: object = None) -> tuple[str, str]:
    """``(connection string without a redis_type=... part, effective redis_type)``.

    A ``redis_type=`` in the connection string (e.g. ``SEARCHSAGE_REDIS=a:1,b:2,redis_type=redis_cluster``)
    selects the type where nothing else does: it overrides a ``configured`` plain ``redis`` (Feast's
    default) and must agree with any other configured type."""
    parts = [p for p in conn.split(",")] if "://" not in conn else [conn]
    inline = [p.split("=", 1)[1].strip() for p in parts if p.strip().lower().startswith("redis_type=")]
    rest = ",".join(p for p in parts if not p.strip().lower().startswith("redis_type="))
    wanted = redis_type_of(configured) if configured is not None else "redis"
    if not inline:
        return rest, wanted
    given = redis_type_of(inline[-1])
    if configured is not None and wanted not in ("redis", given):
        raise ValueError(f"the connection string says redis_type={given} but the configuration says {wanted}")
    return rest, given


def connect(conn: str, redis_type: object = None, *, cluster: bool = False, check: bool = True,
            sentinel_master: str = DEFAULT_SENTINEL_MASTER, timeout_s: float | None = None,
            retries: int = 2) -> Any:
    """A redis-py client for ``conn`` under ``redis_type`` (see the module docstring).

    ``cluster=True`` is the old spelling of ``redis_type="redis_cluster"``. ``check`` PINGs it first
    (a dead server or bad password fails here, clearly). ``timeout_s`` sets the connect and socket
    timeouts (default: 3 s to connect, no read timeout); ``retries`` is how many times a failed
    command is retried on a fresh connection (short backoff; 0 = fail at once).
    Raises ``ValueError`` for an impossible configuration (several nodes for a plain ``redis``, a
    ``db`` other than 0 on a cluster, an unknown ``redis_type``) and
    :class:`RedisUnavailable` when ``check`` fails.
    """
    import redis
    from redis.backoff import ExponentialBackoff, NoBackoff
    from redis.retry import Retry

    conn, kind = split_redis_type(conn, "redis_cluster" if cluster else redis_type)
    target = parse_connection_string(conn)
    params = dict(target.params)
    timeouts: dict[str, Any] = {"socket_connect_timeout": 3.0 if timeout_s is None else timeout_s}
    if timeout_s is not None:
        timeouts["socket_timeout"] = timeout_s
    kwargs: dict[str, Any] = {**timeouts, **params}
    retry = Retry(ExponentialBackoff(cap=0.2, base=0.02) if retries else NoBackoff(), retries)
    try:
        if kind == "redis_cluster":
            client = _cluster_client(target, kwargs, retry)
        elif kind == "redis_sentinel":
            client = _sentinel_master(target, kwargs, retry, sentinel_master)
        else:
            if len(target.nodes) > 1:
                raise ValueError(
                    f"Redis connection string {redact_secrets(conn)!r} lists {len(target.nodes)} nodes but redis_type "
                    "is redis (one server); set redis_type: redis_cluster (or redis_sentinel) in feature_store.yaml, "
                    "or add redis_type=redis_cluster to the connection string"
                )
            host, port = target.nodes[0]
            client = redis.Redis(host=host, port=port, retry=retry, **kwargs)
        if check:
            client.ping()
    except (redis.RedisError, OSError) as exc:  # incl. RedisClusterException: no node answered
        raise explain_failure(target, exc, kind) from exc
    return client


def _cluster_client(target: RedisTarget, kwargs: dict[str, Any], retry: Any) -> Any:
    from redis.cluster import ClusterNode

    db = int(kwargs.pop("db", 0) or 0)
    if db:
        raise ValueError(f"Redis Cluster at {target.where} has only database 0, the connection string asks for db={db}")
    skip = kwargs.pop("skip_full_coverage_check", None)  # Feast's documented cluster option
    if skip is not None:
        kwargs["require_full_coverage"] = not bool(skip)
    return _classes()[1](startup_nodes=[ClusterNode(h, p) for h, p in target.nodes], retry=retry, **kwargs)


def _sentinel_master(target: RedisTarget, kwargs: dict[str, Any], retry: Any, master: str) -> Any:
    from redis.sentinel import Sentinel

    sentinel_kwargs = {k: v for k, v in kwargs.items() if k.startswith("socket_")}
    if "sentinel_password" in kwargs:  # sentinels with their own requirepass
        sentinel_kwargs["password"] = str(kwargs.pop("sentinel_password"))
    sentinel = Sentinel(target.nodes, sentinel_kwargs=sentinel_kwargs, **kwargs)
    return sentinel.master_for(master or DEFAULT_SENTINEL_MASTER, retry=retry)


def is_cluster(client: Any) -> bool:
    """Whether ``client`` is a Redis Cluster client (commands are routed per key slot)."""
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def register_script(client: Any, text: str) -> Any:
    """``client.register_script(text)``, but callable with ``client=<pipeline>`` on a cluster too
    (redis-py refuses ``EVALSHA`` in a cluster pipeline; there it is sent as ``EVAL``, which Redis
    caches by SHA as well). Each call must touch the keys of one slot: pass one key per call."""
    return _classes()[0](client, text)


@functools.lru_cache(maxsize=1)
def _classes() -> tuple[Any, Any]:
    """(pipeline-safe ``Script``, ``RedisCluster`` subclass) — built on first use: importing
    ``redis.cluster`` costs ~0.15 s, which modules that only redact secrets should not pay."""
    from redis.cluster import ClusterPipeline, RedisCluster
    from redis.commands.core import Script

    class PipelineSafeScript(Script):
        def __call__(self, keys: Any = None, args: Any = None, client: Any = None) -> Any:
            target = self.registered_client if client is None else client
            if isinstance(target, ClusterPipeline):
                keys, args = list(keys or []), list(args or [])
                return target.execute_command("EVAL", self.script, len(keys), *keys, *args)
            return super().__call__(keys, args, client)

    class SearchSageRedisCluster(RedisCluster):
        """``RedisCluster`` whose registered scripts also run inside its pipelines."""

        def register_script(self, script: Any) -> Any:
            return PipelineSafeScript(self, script)

    return PipelineSafeScript, SearchSageRedisCluster
