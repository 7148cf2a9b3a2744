"""Run the ASGI app under a real uvicorn on a free loopback port, in a background thread; a recording
encoder double for the batcher tests."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import uvicorn

from encoders.localredis.server import free_port
from encoders.serving.client import EmbedClient


@contextmanager
def running(app: Any) -> Iterator[int]:
    """Serve ``app`` on 127.0.0.1:<free port> until the block ends; yields the port."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def call(port: int, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
    """One request on a fresh connection -> ``(status, JSON body)``."""

    async def go() -> tuple[int, Any]:
        async with EmbedClient("127.0.0.1", port) as c:
            if method == "GET":
                return await c.get_json(path)
            return await c.post_json(path, payload)

    return asyncio.run(go())


def raw(port: int, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST raw bytes to /embed."""

    async def go() -> tuple[int, bytes]:
        async with EmbedClient("127.0.0.1", port) as c:
            return await c.request("POST", "/embed", body, headers)

    return asyncio.run(go())


def concurrent_embeds(port: int, queries: list[str]) -> list[tuple[int, Any]]:
    """One connection per query, all sent at once (as concurrent rankers would)."""

    async def one(q: str) -> tuple[int, Any]:
        async with EmbedClient("127.0.0.1", port) as c:
            return await c.post_json("/embed", {"queries": [q]})

    async def go() -> list[tuple[int, Any]]:
        return await asyncio.gather(*(one(q) for q in queries))

    return asyncio.run(go())


def raw_get(port: int, path: str) -> tuple[int, bytes]:
    """GET ``path`` -> ``(status, body bytes)``."""

    async def go() -> tuple[int, bytes]:
        async with EmbedClient("127.0.0.1", port) as c:
            return await c.request("GET", path)

    return asyncio.run(go())


def wait_until(predicate: Any, timeout_s: float = 5.0) -> bool:
    """Poll ``predicate()`` every 50 ms until it is true (→ True) or ``timeout_s`` passes (→ False)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def http(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request through the standard library's HTTP client -> ``(status, headers, body)``."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class SlowEncoder:
    """The real encoder, made to take at least ``delay_s`` per call (to hold the worker busy)."""

    def __init__(self, inner: Any, delay_s: float) -> None:
        self.inner, self.delay_s = inner, delay_s
        self.calls: list[int] = []

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    @property
    def model_version(self) -> str:
        return str(self.inner.model_version)

    def encode(self, texts: list[str]) -> Any:
        self.calls.append(len(texts))
        time.sleep(self.delay_s)
        return self.inner.encode(texts)


DIM = 8


def vec(text: str) -> np.ndarray:
    """A deterministic (DIM,) float32 vector per text."""
    return np.frombuffer(hashlib.sha256(text.encode()).digest()[: DIM * 4], dtype=np.uint32).astype(np.float32)


class RecordingEncoder:
    """Records the size of every encode call; sleeps ``delay_s`` per call; can be told to fail."""

    dim = DIM
    model_version = "test"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[list[str]] = []
        self.fail_next: Exception | None = None
        self.poison: str | None = None  # any call holding this text fails, like a tokenizer on bad input
        self.started: list[float] = []
        self.bad_shape_next = False
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            self.calls.append(list(texts))
            self.started.append(time.perf_counter())
            self.threads.add(threading.current_thread().name)
            fail, self.fail_next = self.fail_next, None
            bad, self.bad_shape_next = self.bad_shape_next, False
        if self.delay_s:
            time.sleep(self.delay_s)
        if fail is not None:
            raise fail
        if self.poison is not None and any(self.poison in t for t in texts):
            raise TypeError("TextEncodeInput must be Union[TextInputSequence, Tuple[InputSequence, InputSequence]]")
        if bad:
            return np.zeros((len(texts) + 1, DIM), dtype=np.float32)
        return np.stack([vec(t) for t in texts])
