"""Cache-through over the online store: look up first, embed only misses, write them back.

:class:`CacheThrough` never makes a request wait for a broken Redis. The first store error
(or a lookup slower than ``timeout_s``) marks the store ``down``: lookups then return "all miss"
at once and write-backs are dropped (counted), while a background task retries with exponential
backoff (``retry_initial_s`` doubling up to ``retry_max_s``) and marks it ``ok`` again when a
probe succeeds. Write-backs are coalesced and written by one background task, off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from encoders.serving.metrics import ServiceMetrics
from encoders.serving.protocols import EmbeddingStore

PROBE_KEY = "__searchsage_health_probe__"
STATE_DISABLED, STATE_OK, STATE_DOWN = "disabled", "ok", "down"


@dataclass
class StoreHealth:
    """What ``/health`` reports about the store."""

    state: str
    last_error: str | None
    retry_in_s: float | None
    consecutive_failures: int
    pending_write_rows: int

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "last_error": self.last_error,
            "retry_in_s": None if self.retry_in_s is None else round(self.retry_in_s, 3),
            "consecutive_failures": self.consecutive_failures,
            "pending_write_rows": self.pending_write_rows,
        }


class CacheThrough:
    """Store lookups and write-backs with a health state and background reconnection.

    Args:
        store: the online-store fast path, or ``None`` to serve from the encoder only.
        dim: D, the embedding width (rows returned for misses are zeros of this width).
        model_version: written with every record.
        metrics: hit/miss/write counters are recorded here.
        timeout_s: a lookup slower than this is treated as a store failure (all miss).
        max_pending_rows: write-back rows buffered at most; more are dropped (counted).
        write_back: write misses back (off for a variant that is unsafe to store).
        accept_versions: ``model_version`` values a stored row may carry to count as a hit
            (default: ``model_version`` only); others count as ``stale`` misses.
    """

    def __init__(
        self,
        store: EmbeddingStore | None,
        *,
        dim: int,
        model_version: str,
        metrics: ServiceMetrics,
        timeout_s: float = 0.25,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_pending_rows: int = 50_000,
        write_back: bool = True,
        accept_versions: tuple[str, ...] = (),
    ) -> None:
        self.store = store
        self.dim = dim
        self.model_version = model_version
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.max_pending_rows = max_pending_rows
        self.write_back = write_back
        self.accept_versions = tuple(dict.fromkeys((model_version, *accept_versions)))
        self.state = STATE_DISABLED if store is None else STATE_OK
        self.last_error: str | None = None
        self.failures = 0
        self.stale = 0  # rows found under another model_version (treated as misses, overwritten)
        self._backoff = retry_initial_s
        self._next_retry = 0.0
        self._pending: list[tuple[list[str], np.ndarray]] = []
        self._pending_rows = 0
        self._writing = False
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="searchsage-store")
        self._wake_writer: asyncio.Event | None = None
        self._wake_prober: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the writer and the reconnection task (no-op without a store)."""
        if self.store is None or self._tasks:
            return
        self._wake_writer, self._wake_prober, self._idle = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._idle.set()
        loop = asyncio.get_running_loop()
        try:  # connect now, so the first request does not pay for it; a dead Redis means degraded
            await asyncio.wait_for(loop.run_in_executor(self._executor, self._probe), timeout=max(2.0, self.timeout_s))
        except Exception as exc:
            self._mark_down(exc if str(exc) else type(exc).__name__)
        self._tasks = [loop.create_task(self._writer()), loop.create_task(self._prober())]

    async def aclose(self) -> None:
        """Flush pending writes (briefly), stop background tasks and the I/O threads."""
        if self._tasks and self.state == STATE_OK:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.flush(), timeout=2.0)
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        self._executor.shutdown(wait=False, cancel_futures=True)

    # --- health ---------------------------------------------------------------------------------
    def health(self) -> StoreHealth:
        retry = max(0.0, self._next_retry - time.monotonic()) if self.state == STATE_DOWN else None
        return StoreHealth(self.state, self.last_error, retry, self.failures, self._pending_rows)

    def _mark_down(self, exc: BaseException | str) -> None:
        self.metrics.store_errors += 1
        self.last_error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        self.failures += 1
        if self.state != STATE_DOWN:
            self.state = STATE_DOWN
            self._backoff = self.retry_initial_s
            self._next_retry = time.monotonic() + self._backoff
            if self._wake_prober is not None:
                self._wake_prober.set()
        self._drop_pending()

    def _mark_ok(self) -> None:
        self.state = STATE_OK
        self.failures = 0
        self._backoff = self.retry_initial_s

    # --- lookups --------------------------------------------------------------------------------
    async def lookup(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Fetch ``keys`` -> ``(matrix (N, D) float32, found (N,) bool)``; never raises.

        While the store is down or disabled this returns all-miss at once (``bypassed``).
        """
        n = len(keys)
        miss = (np.zeros((n, self.dim), dtype=np.float32), np.zeros(n, dtype=bool))
        if self.state != STATE_OK or self.store is None or n == 0:
            if self.store is not None:
                self.metrics.record_cache(0, 0, bypassed=n)
            return miss
        loop = asyncio.get_running_loop()
        try:
            matrix, found = await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._fetch_current, keys), timeout=self.timeout_s
            )
        except asyncio.TimeoutError:
            self._mark_down(f"lookup took longer than {self.timeout_s * 1000:.0f} ms")
            self.metrics.record_cache(0, 0, bypassed=n)
            return miss
        except Exception as exc:  # any store failure degrades; it never fails the request
            self._mark_down(exc)
            self.metrics.record_cache(0, 0, bypassed=n)
            return miss
        hits = int(found.sum())
        self.metrics.record_cache(hits, n - hits)
        return matrix, found

    def _fetch_current(self, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Store rows written by this model version; rows of another version count as misses."""
        assert self.store is not None
        n = len(keys)
        fetch_current = getattr(self.store, "fetch_current", None)
        with_versions = getattr(self.store, "fetch_with_versions", None)
        if callable(fetch_current):
            matrix, found, stale = fetch_current(keys, self.accept_versions)
            self.stale += int(stale)
        elif callable(with_versions):
            matrix, found, versions = with_versions(keys)
            found = np.asarray(found, dtype=bool).reshape(n)
            current = np.fromiter((v in self.accept_versions for v in versions), dtype=bool, count=n)
            self.stale += int((found & ~current).sum())
            found = found & current
        else:
            matrix, found = self.store.fetch(keys)
            found = np.asarray(found, dtype=bool).reshape(n)
        return np.array(matrix, dtype=np.float32).reshape(n, self.dim), found

    # --- write-back -----------------------------------------------------------------------------
    def schedule_write(self, keys: list[str], matrix: np.ndarray) -> None:
        """Queue ``(N, D)`` rows for the background writer; dropped (counted) when the store is down."""
        if self.store is None or not keys or not self.write_back:
            return
        if self.state != STATE_OK or self._pending_rows + len(keys) > self.max_pending_rows:
            self.metrics.writes_dropped += len(keys)
            return
        self._pending.append((list(keys), matrix))
        self._pending_rows += len(keys)
        assert self._wake_writer is not None and self._idle is not None
        self._idle.clear()
        self._wake_writer.set()

    def _drop_pending(self) -> None:
        self.metrics.writes_dropped += self._pending_rows
        self._pending, self._pending_rows = [], 0
        if self._idle is not None and not self._writing:
            self._idle.set()

    async def flush(self) -> None:
        """Wait until every queued write-back has been written (or dropped)."""
        if self._idle is not None:
            await self._idle.wait()

    async def _writer(self) -> None:
        assert self._wake_writer is not None and self._idle is not None and self.store is not None
        loop = asyncio.get_running_loop()
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            if not self._pending:
                self._idle.set()
                continue
            batch, self._pending, self._pending_rows = self._pending, [], 0
            rows: dict[str, np.ndarray] = {}
            for keys, mat in batch:
                for k, row in zip(keys, mat, strict=True):
                    rows[k] = row
            keys = list(rows)
            matrix = np.stack([rows[k] for k in keys]).astype(np.float32, copy=False)
            self._writing = True
            try:
                await loop.run_in_executor(self._executor, self.store.write, keys, matrix, self.model_version)
                self.metrics.writes += len(keys)
            except Exception as exc:
                self.metrics.write_errors += len(keys)
                self._mark_down(exc)
            finally:
                self._writing = False
            if self._pending:
                self._wake_writer.set()
            else:
                self._idle.set()

    # --- reconnection ---------------------------------------------------------------------------
    def _probe(self) -> None:
        assert self.store is not None
        self._fetch_current([PROBE_KEY])  # the whole lookup path: connection, imports, decoding

    async def _prober(self) -> None:
        assert self._wake_prober is not None
        loop = asyncio.get_running_loop()
        while True:
            if self.state != STATE_DOWN:
                self._wake_prober.clear()
                await self._wake_prober.wait()
                continue
            await asyncio.sleep(max(0.0, self._next_retry - time.monotonic()))
            try:
                await asyncio.wait_for(loop.run_in_executor(self._executor, self._probe), timeout=max(1.0, self.timeout_s))
            except Exception as exc:
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                self._backoff = min(self._backoff * 2, self.retry_max_s)
                self._next_retry = time.monotonic() + self._backoff
            else:
                self._mark_ok()
