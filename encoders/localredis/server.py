"""Start and stop a local ``redis-server`` bound to 127.0.0.1 for development and tests.

``LocalRedis`` picks a free port, writes a pid file and data into a directory of its own, waits
until the server answers PING, and stops it on exit (``with LocalRedis() as r: r.url``).

Every path handed to redis-server is absolute: it changes into ``--dir`` at start, so a relative
``--pidfile`` would land in ``dir/dir/``. The long-lived development server of ``searchsage redis
start|stop|status`` keeps its pid file, log and data in :func:`default_dir` — one directory per
port under ``$SEARCHSAGE_HOME`` (default ``~/.searchsage``) — so ``stop`` finds what ``start``
started from any working directory.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from encoders.redis_records.connection import RedisUnavailable

HOME_ENV = "SEARCHSAGE_HOME"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    """Path of ``redis-server`` or a :class:`RedisUnavailable` saying how to install it."""
    exe = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)
    if exe is None:
        raise RedisUnavailable(
            "redis-server is not installed; install it with `sudo apt-get install -y redis-server` "
            "(Debian/Ubuntu) or point SEARCHSAGE_REDIS at a running server"
        )
    return exe


@dataclass
class LocalRedis:
    """A private redis-server on 127.0.0.1; use as a context manager or call start()/stop()."""

    port: int | None = None
    password: str | None = None
    directory: Path | None = None
    host: str = "127.0.0.1"
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _own_dir: bool = field(default=False, init=False, repr=False)

    @property
    def connection_string(self) -> str:
        """Feast-style connection string: ``host:port[,password=...]``."""
        s = f"{self.host}:{self.port}"
        return s + (f",password={self.password}" if self.password else "")

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def pid_file(self) -> Path:
        assert self.directory is not None
        return self.directory / "redis.pid"

    def server_command(self) -> list[str]:
        """The server's argv before the options (a subclass may use another binary or load modules)."""
        return [redis_server_binary()]

    def start(self, timeout_s: float = 10.0) -> LocalRedis:
        command = self.server_command()
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="searchsage-redis-"))
            self._own_dir = True
        self.directory = Path(self.directory).expanduser().resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)
        args = [
            *command, "--bind", self.host, "--port", str(self.port), "--dir", str(self.directory),
            "--pidfile", str(self.pid_file), "--save", "", "--appendonly", "no",
            "--protected-mode", "yes", "--daemonize", "no", "--loglevel", "warning",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RedisUnavailable(
                    f"redis-server exited with code {self._proc.returncode}; see {self.directory / 'redis.log'}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"redis-server did not answer on {self.host}:{self.port} within {timeout_s}s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None
        if self._own_dir and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- a long-lived development server (``searchsage redis start|stop|status``) -------------------


@dataclass
class DaemonStatus:
    """What ``searchsage redis status`` reports for one directory/port."""

    directory: Path
    port: int
    pid: int | None
    alive: bool
    answers: bool


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def default_dir(port: int) -> Path:
    """Where ``searchsage redis start --port PORT`` keeps pid file, log and data (absolute)."""
    home = os.environ.get(HOME_ENV) or "~/.searchsage"
    return Path(home).expanduser().resolve() / "redis" / str(port)


def port_from_env(default: int = 6379) -> int:
    """The port of ``$SEARCHSAGE_REDIS`` when it names this machine, else ``default``.

    ``host:port[,options]`` or ``redis://[:pw@]host:port/db``; a remote host is refused (this
    command only starts servers on 127.0.0.1), so is a port that is not a number.
    """
    conn = (os.environ.get("SEARCHSAGE_REDIS") or "").strip()
    if not conn or conn.startswith("${"):
        return default
    first = conn.split("://", 1)[-1].split(",", 1)[0].rsplit("@", 1)[-1].split("/", 1)[0]
    host, _, port = first.rpartition(":") if ":" in first else (first, "", "")
    if host not in ("", "localhost", "127.0.0.1", "::1", "[::1]"):
        raise RedisUnavailable(f"SEARCHSAGE_REDIS={conn!r} names host {host!r}; `searchsage redis` only runs servers "
                               "on 127.0.0.1: pass --port, or unset SEARCHSAGE_REDIS")
    if not port:
        return default
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise RedisUnavailable(f"SEARCHSAGE_REDIS={conn!r}: port {port!r} is not a TCP port")
    return int(port)


def _is_redis(pid: int) -> bool:
    """False only when /proc says ``pid`` is some other program (a recycled pid)."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return b"redis" in cmd


def read_pid(directory: Path) -> int | None:
    """The pid recorded in ``directory/redis.pid`` (None if there is none)."""
    f = Path(directory).expanduser().resolve() / "redis.pid"
    try:
        return int(f.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something on host:port answers a RESP PING (any reply, even NOAUTH)."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return bool(s.recv(64))
    except OSError:
        return False


def start_daemon(directory: Path, port: int = 6379, password: str | None = None) -> LocalRedis:
    """Start a redis-server that outlives this process; pid file + log in ``directory``."""
    directory = Path(directory).expanduser().resolve()
    pid = read_pid(directory)
    if pid is not None and _pid_alive(pid) and _is_redis(pid):
        raise RedisUnavailable(f"a redis-server (pid {pid}) already runs from {directory}; "
                               f"`searchsage redis stop --dir {directory}` first")
    if ping("127.0.0.1", port):
        raise RedisUnavailable(f"port {port} on 127.0.0.1 is already in use; pick another with --port")
    server = LocalRedis(port=port, password=password, directory=directory)
    return server.start()  # the child runs in its own session, so it survives our exit


def stop_daemon(directory: Path, timeout_s: float = 10.0) -> int | None:
    """SIGTERM the server recorded in ``directory``; returns its pid (None if none was running)."""
    directory = Path(directory).expanduser().resolve()
    pid = read_pid(directory)
    if pid is None or not _pid_alive(pid) or not _is_redis(pid):
        (directory / "redis.pid").unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _pid_alive(pid):
        raise RedisUnavailable(f"redis-server pid {pid} did not stop within {timeout_s}s")
    (directory / "redis.pid").unlink(missing_ok=True)
    return pid


def daemon_status(directory: Path, port: int = 6379, host: str = "127.0.0.1") -> DaemonStatus:
    directory = Path(directory).expanduser().resolve()
    pid = read_pid(directory)
    alive = pid is not None and _pid_alive(pid) and _is_redis(pid)
    return DaemonStatus(directory, port, pid, alive, ping(host, port))
