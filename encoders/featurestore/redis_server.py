"""Start and stop a local ``redis-server`` bound to 127.0.0.1 for development and tests.

``LocalRedis`` picks a free port, writes a pid file and data into a directory of its own, waits
until the server answers PING, and stops it on exit (``with LocalRedis() as r: r.url``).
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


class RedisUnavailable(RuntimeError):
    """Redis cannot be reached or started; the message says what to run."""


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

    def start(self, timeout_s: float = 10.0) -> LocalRedis:
        exe = redis_server_binary()
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="searchsage-redis-"))
            self._own_dir = True
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = free_port(self.host)
        args = [
            exe, "--bind", self.host, "--port", str(self.port), "--dir", str(self.directory),
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


def read_pid(directory: Path) -> int | None:
    """The pid recorded in ``directory/redis.pid`` (None if there is none)."""
    f = Path(directory) / "redis.pid"
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
    directory = Path(directory)
    pid = read_pid(directory)
    if pid is not None and _pid_alive(pid):
        raise RedisUnavailable(f"a redis-server (pid {pid}) already runs from {directory}; "
                               f"`searchsage redis stop --dir {directory}` first")
    if ping("127.0.0.1", port):
        raise RedisUnavailable(f"port {port} on 127.0.0.1 is already in use; pick another with --port")
    server = LocalRedis(port=port, password=password, directory=directory)
    return server.start()  # the child runs in its own session, so it survives our exit


def stop_daemon(directory: Path, timeout_s: float = 10.0) -> int | None:
    """SIGTERM the server recorded in ``directory``; returns its pid (None if none was running)."""
    pid = read_pid(directory)
    if pid is None or not _pid_alive(pid):
        (Path(directory) / "redis.pid").unlink(missing_ok=True)
        return None
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _pid_alive(pid):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _pid_alive(pid):
        raise RedisUnavailable(f"redis-server pid {pid} did not stop within {timeout_s}s")
    (Path(directory) / "redis.pid").unlink(missing_ok=True)
    return pid


def daemon_status(directory: Path, port: int = 6379, host: str = "127.0.0.1") -> DaemonStatus:
    pid = read_pid(directory)
    return DaemonStatus(Path(directory), port, pid, pid is not None and _pid_alive(pid), ping(host, port))
