"""Redis connections for the feature store, with errors that say what to run.

The connection string is Feast's format, ``host:port[,password=...][,db=N][,ssl=true]`` (a
cluster lists several ``host:port``), or a URL ``redis://[user:password@]host:port[/db]``
(``rediss://`` for TLS). ``SEARCHSAGE_REDIS`` overrides it; the default is ``localhost:6379``.

Connection strings hold passwords: whatever prints one (errors, ``/health``, metrics, logs, CLI
output) passes it through :func:`redact_secrets` first.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from encoders.featurestore.redis_server import RedisUnavailable

#: Environment variable holding the Redis connection string of the online store.
REDIS_ENV = "SEARCHSAGE_REDIS"
DEFAULT_CONNECTION = "localhost:6379"
#: What a redacted secret is replaced with.
REDACTED = "***"
_URL_SCHEMES = ("redis", "rediss", "valkey", "valkeys")
# ``password=secret`` / ``'password': 'secret'`` / ``"password":"secret"`` in any text.
_PASSWORD_PAIR = re.compile(r"""(?i)(['"]?\b(?:password|passwd|pwd|requirepass)['"]?\s*[=:]\s*['"]?)([^\s,;&'"}\]]+)""")
# ``scheme://user:secret@`` (the userinfo of a URL).
_URL_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@/]+)(@)")


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


def explain_failure(target: RedisTarget, exc: BaseException) -> RedisUnavailable:
    """Turn a redis-py exception into a :class:`RedisUnavailable` that says what to do."""
    import redis

    host, port = target.nodes[0]
    msg = str(exc).lower()
    if isinstance(exc, redis.AuthenticationError) or "noauth" in msg or "wrongpass" in msg or "auth" in msg:
        return RedisAuthError(
            f"Redis at {target.where} refused authentication ({redact_secrets(exc)}); put the right password in "
            f"{REDIS_ENV}, e.g. {REDIS_ENV}='{host}:{port},password=...'"
        )
    return RedisUnavailable(
        f"cannot reach Redis at {target.where} ({redact_secrets(exc)}); start one with "
        f"`searchsage redis start --port {port}` or point {REDIS_ENV} at a running server "
        f"(now {redact_secrets(os.environ.get(REDIS_ENV, 'unset, default ' + DEFAULT_CONNECTION))})"
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
