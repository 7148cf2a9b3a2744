"""A private Redis Cluster on 127.0.0.1 for tests and benchmarks of ``redis_type: redis_cluster``.

``with LocalRedisCluster(3) as c: c.connection_string`` starts ``masters`` redis-server processes
with ``cluster-enabled yes`` (no replicas) on free ports and joins them with ``redis-cli --cluster
create``; leaving ends the processes and removes their data. Needs ``redis-server`` and
``redis-cli`` (Debian: ``redis-server`` and ``redis-tools``).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from encoders.localredis.server import free_port, redis_server_binary
from encoders.redis_records.connection import RedisUnavailable


class LocalRedisCluster:
    """A real Redis Cluster of ``masters`` redis-server processes (no replicas) on 127.0.0.1,
    created with ``redis-cli --cluster create``; ``stop()`` ends the processes and removes the data."""

    def __init__(self, masters: int = 3) -> None:
        self.masters = masters
        self.ports: list[int] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.directory: Path | None = None

    @property
    def connection_string(self) -> str:
        """Feast's cluster format: every ``host:port``; ``redis_type: redis_cluster`` goes with it."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self, timeout_s: float = 30.0) -> LocalRedisCluster:
        import redis

        cli = shutil.which("redis-cli")
        if cli is None:
            raise RedisUnavailable("redis-cli is not installed (apt-get install redis-tools)")
        self.directory = Path(tempfile.mkdtemp(prefix="searchsage-cluster-"))
        while len(self.ports) < self.masters:  # cluster bus = port + 10000: keep both below 65536
            port = free_port()
            if port < 55000 and port not in self.ports:
                self.ports.append(port)
        for port in self.ports:
            d = self.directory / str(port)
            d.mkdir()
            log = open(d / "redis.log", "ab")  # noqa: SIM115 - owned by the child
            self.procs.append(subprocess.Popen(
                [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(d),
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + timeout_s
        for port in self.ports:
            while True:
                try:
                    redis.Redis(port=port, socket_connect_timeout=0.2).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RedisUnavailable(f"cluster node {port} did not start; see {self.directory}") from None
                    time.sleep(0.05)
        made = subprocess.run([cli, "--cluster", "create", *self.connection_string.split(","),
                               "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            self.stop()
            raise RedisUnavailable(f"redis-cli --cluster create failed: {made.stdout[-2000:]} {made.stderr[-2000:]}")
        while any(redis.Redis(port=p).cluster("info")["cluster_state"] != "ok" for p in self.ports):
            if time.monotonic() > deadline:
                self.stop()
                raise RedisUnavailable("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        return self

    def node(self, i: int) -> Any:
        """A plain client of node ``i`` (for per-node counts and FLUSHALL)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.ports[i])

    def flushall(self) -> None:
        for i in range(len(self.ports)):
            self.node(i).flushall()

    def keys_per_node(self) -> list[int]:
        return [int(self.node(i).dbsize()) for i in range(len(self.ports))]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = []
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
