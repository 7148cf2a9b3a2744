"""Pick the demo's online store: a reachable Redis, a private local redis-server, or Feast's SQLite.

Order: ``$SEARCHSAGE_REDIS`` if set (must answer, else a clear error); ``127.0.0.1:6379`` if a
server answers there; a new ``redis-server`` on a free loopback port kept in ``workdir/redis``
(pid file; stopped with ``searchsage redis stop``); and when no ``redis-server`` is installed,
Feast's SQLite online store (said loudly, with the apt command that would give Redis).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class OnlineStoreChoice:
    """The online store the demo uses: ``kind`` is ``redis`` or ``sqlite``."""

    kind: str
    connection_string: str | None
    started_here: bool
    message: str


def _answers_ping(host: str, port: int, password: str | None = None) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            if password:
                s.sendall(f"AUTH {password}\r\n".encode())
                s.recv(64)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def _parse(conn: str) -> tuple[str, int, str | None]:
    hostport, *opts = conn.split(",")
    host, _, port = hostport.partition(":")
    password = next((o.split("=", 1)[1] for o in opts if o.startswith("password=")), None)
    return host or "localhost", int(port or 6379), password


def choose_online_store(workdir: Path) -> OnlineStoreChoice:
    """Find or start Redis for the demo; fall back to SQLite only when Redis cannot be had."""
    from encoders.localredis.server import LocalRedis, free_port, redis_server_binary
    from encoders.redis_records.connection import RedisUnavailable

    env = os.environ.get("SEARCHSAGE_REDIS")
    if env:
        host, port, password = _parse(env)
        if not _answers_ping(host, port, password):
            raise RedisUnavailable(
                f"SEARCHSAGE_REDIS={env} does not answer PING; start it, fix the variable, or unset it "
                "to let the demo start its own redis-server"
            )
        return OnlineStoreChoice("redis", env, False, f"Redis at {host}:{port} (from SEARCHSAGE_REDIS)")
    if _answers_ping("127.0.0.1", 6379):
        return OnlineStoreChoice("redis", "127.0.0.1:6379", False, "Redis already running at 127.0.0.1:6379")
    try:
        redis_server_binary()
    except RedisUnavailable as exc:
        return OnlineStoreChoice("sqlite", None, False, f"{exc}. Using Feast's SQLite online store instead.")
    pid_dir = workdir / "redis"
    pid_file = pid_dir / "redis.pid"
    if pid_file.exists() and (m := re.search(r"\d+", (pid_dir / "port").read_text() if (pid_dir / "port").exists() else "")):
        port = int(m.group())
        if _answers_ping("127.0.0.1", port):
            return OnlineStoreChoice("redis", f"127.0.0.1:{port}", False, f"demo redis-server already on 127.0.0.1:{port}")
    port = free_port()
    server = LocalRedis(port=port, directory=pid_dir)
    server.start()
    server._proc = None  # keep it running after the demo: the dashboard and `searchsage rank` read it
    (pid_dir / "port").write_text(str(port))
    return OnlineStoreChoice(
        "redis", server.connection_string, True,
        f"started redis-server on 127.0.0.1:{port} (stop: kill $(cat {pid_file}))",
    )


SQLITE_ONLINE_STORE = "online_store:\n  type: sqlite\n  path: data/online_store.db\n"


def use_sqlite(repo: Path) -> None:
    """Rewrite ``repo/feature_store.yaml`` to Feast's SQLite online store (no Redis on this machine)."""
    path = repo / "feature_store.yaml"
    text = path.read_text()
    text = re.sub(r"online_store:\n(?:[ \t]+.*\n|\s*\n)+?(?=\S)", SQLITE_ONLINE_STORE + "\n", text, count=1)
    path.write_text(text)
