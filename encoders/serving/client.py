"""A small keep-alive HTTP/1.1 client on raw asyncio streams (no extra dependency).

Light enough to drive the service from the same 2 cores in benchmarks, and what a Python
ranker can use to call ``POST /embed``::

    async with EmbedClient("127.0.0.1", 8000) as c:
        status, payload = await c.post_json("/embed", {"queries": ["angle bracket"]})
        result = await c.embed(["angle bracket"])          # binary response -> (N, D) float32
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np


class HTTPProtocolError(RuntimeError):
    """The server's reply was not an HTTP/1.1 response with a Content-Length body."""


class EmbedError(RuntimeError):
    """``POST /embed`` answered with an error status; ``status`` and the server's ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


@dataclass
class Embeddings:
    """A decoded ``/embed`` answer: ``matrix`` ``(N, D)`` float32, ``cached`` ``(N,)`` bool."""

    matrix: np.ndarray
    cached: np.ndarray
    model_version: str


class EmbedClient:
    """One persistent connection; requests on it are sequential (open one client per worker)."""

    def __init__(self, host: str, port: int, timeout_s: float = 30.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> EmbedClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
            self._reader = self._writer = None

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """Send one request -> ``(status, body bytes)``; reconnects once if the connection dropped."""
        status, _, data = await self.exchange(method, path, body, headers)
        return status, data

    async def exchange(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
                       ) -> tuple[int, dict[str, str], bytes]:
        """Like :meth:`request`, plus the response headers (lower-case names)."""
        for attempt in (0, 1):
            if self._writer is None:
                await self.connect()
            try:
                return await asyncio.wait_for(self._roundtrip(method, path, body, headers or {}), self.timeout_s)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _roundtrip(self, method: str, path: str, body: bytes, headers: dict[str, str]
                         ) -> tuple[int, dict[str, str], bytes]:
        assert self._reader is not None and self._writer is not None
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        if body:
            head.append("Content-Type: application/json")
        head += [f"{k}: {v}" for k, v in headers.items()]
        self._writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await self._writer.drain()
        status_line = await self._reader.readline()
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise HTTPProtocolError(f"bad status line {status_line!r}")
        status = int(parts[1])
        found: dict[str, str] = {}
        while True:
            line = await self._reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            found[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
        if "content-length" not in found:
            raise HTTPProtocolError(f"response {status} has no Content-Length")
        data = await self._reader.readexactly(int(found["content-length"]))
        if found.get("connection", "").lower() == "close":
            await self.close()
        return status, found, data

    async def post_json(self, path: str, payload: Any) -> tuple[int, Any]:
        """POST ``payload`` as JSON -> ``(status, decoded JSON body)``."""
        status, data = await self.request("POST", path, json.dumps(payload).encode())
        return status, json.loads(data) if data else None

    async def embed(self, queries: list[str], binary: bool = True) -> Embeddings:
        """``POST /embed`` -> :class:`Embeddings`; ``binary`` asks for the float32 body
        (``Accept: application/octet-stream``), else JSON. Raises :class:`EmbedError` on a non-200."""
        headers = {"Accept": "application/octet-stream"} if binary else {}
        status, head, data = await self.exchange("POST", "/embed", json.dumps({"queries": queries}).encode(), headers)
        if status != 200:
            try:
                message = str(json.loads(data)["error"])
            except (ValueError, KeyError, TypeError):
                message = data[:200].decode("utf-8", "replace")
            raise EmbedError(status, message)
        if head.get("content-type", "").startswith("application/octet-stream"):
            try:
                n, d = (int(x) for x in head["x-embedding-shape"].split(","))
            except (KeyError, ValueError):
                raise HTTPProtocolError(f"binary /embed answer without a valid X-Embedding-Shape: {head}") from None
            if len(data) != 4 * n * d:
                raise HTTPProtocolError(f"binary /embed answer of {len(data)} bytes, expected {n}x{d} float32")
            flags = head.get("x-embedding-cached", "")
            cached = np.array([f == "1" for f in flags.split(",")] if flags else [], dtype=bool)
            matrix = np.frombuffer(data, dtype="<f4").reshape(n, d).astype(np.float32, copy=True)
            return Embeddings(matrix, cached, head.get("x-model-version", ""))
        payload = json.loads(data)
        return Embeddings(np.asarray(payload["embeddings"], dtype=np.float32).reshape(len(queries), payload["dim"]),
                          np.asarray(payload["cached"], dtype=bool), str(payload["model_version"]))

    async def get_json(self, path: str) -> tuple[int, Any]:
        status, data = await self.request("GET", path)
        return status, json.loads(data) if data else None
