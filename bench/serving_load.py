"""The benchmark's load: ``searchsage serve`` in a subprocess, closed-loop and open-loop clients.

The clients are raw asyncio HTTP clients (:class:`encoders.serving.client.EmbedClient`) that do
not parse responses, so the load generator costs the shared cores as little as possible.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from encoders.localredis.server import free_port
from encoders.serving.client import EmbedClient

ROOT = Path(__file__).resolve().parents[1]


class Server:
    """``searchsage serve`` in a subprocess on a free loopback port."""

    def __init__(self, bundle: Path, batching: bool, threads: int, max_wait_ms: float, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        cmd = [sys.executable, "-m", "encoders.cli.main", "serve", "--bundle", str(bundle), "--port",
               str(self.port), "--threads", str(threads), "--max-wait-ms", str(max_wait_ms), "--log-level", "error", *extra]
        if not batching:
            cmd.append("--no-batching")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"server exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                async with EmbedClient("127.0.0.1", self.port, timeout_s=5) as c:
                    if (await c.get_json("/health"))[0] == 200:
                        return
            except OSError:
                await asyncio.sleep(0.1)
        raise RuntimeError("server did not become ready")

    async def counters(self) -> tuple[int, int, float]:
        """(batches, batched queries, encoder seconds) from the service's ``/metrics``."""
        async with EmbedClient("127.0.0.1", self.port) as c:
            m = (await c.get_json("/metrics"))[1]
        return int(m["batches"]["count"]), int(m["batches"]["queries"]), float(m["histograms"]["encode_seconds"]["sum"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def closed_loop(port: int, bodies: list[bytes], concurrency: int, n_requests: int, duration_s: float,
                      headers: dict[str, str] | None = None) -> tuple[list[float], int, float]:
    """``concurrency`` clients, each one request at a time -> (latencies s, errors, elapsed s)."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(n_requests))
    t_end = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal errors
        async with EmbedClient("127.0.0.1", port) as c:
            for i in counter:
                if time.perf_counter() > t_end:
                    return
                t0 = time.perf_counter()
                status, _ = await c.request("POST", "/embed", bodies[i % len(bodies)], headers)
                latencies.append(time.perf_counter() - t0)
                errors += status != 200

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, time.perf_counter() - t0


async def open_loop(port: int, bodies: list[bytes], rate: float, duration_s: float, max_inflight: int,
                    headers: dict[str, str] | None = None) -> tuple[list[float], int, float]:
    """Requests at a fixed ``rate``/s for ``duration_s``; latency counted from the scheduled time."""
    pool: asyncio.Queue[EmbedClient] = asyncio.Queue()
    for _ in range(max_inflight):
        c = EmbedClient("127.0.0.1", port)
        await c.connect()
        pool.put_nowait(c)
    latencies: list[float] = []
    errors = 0

    async def fire(body: bytes, scheduled: float) -> None:
        nonlocal errors
        c = await pool.get()
        try:
            status, _ = await c.request("POST", "/embed", body, headers)
            errors += status != 200
        finally:
            pool.put_nowait(c)
        latencies.append(time.perf_counter() - scheduled)

    n = int(rate * duration_s)
    tasks = []
    t0 = time.perf_counter()
    for i in range(n):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(fire(bodies[i % len(bodies)], scheduled)))
    # Bounded: requests still unanswered 30 s after the last send are cancelled and counted as errors.
    _, pending = await asyncio.wait(tasks, timeout=30.0)
    for t in pending:
        t.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    errors += len(pending)
    elapsed = time.perf_counter() - t0
    while not pool.empty():
        await pool.get_nowait().close()
    return latencies, errors, elapsed
