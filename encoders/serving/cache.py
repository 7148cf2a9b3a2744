"""Cache-through over the online store: look up first, embed only misses, write them back.

:class:`CacheThrough` never makes a request wait for a broken Redis. A connection-level failure
(refused, reset, timed out, authentication, or a lookup slower than ``timeout_s``) marks the store
``down``: lookups then return "all miss" at once and write-backs are dropped (counted), while a
background task retries with exponential backoff (``retry_initial_s`` doubling up to
``retry_max_s``) and marks it ``ok`` again when a probe succeeds. Anything else is a per-request
error (a key that cannot be encoded, a row that does not decode, a bug): that request is answered
from the encoder and counted, and the store stays in service for everyone else.

Write-backs are coalesced and written by one background task, off the request path; shutdown
flushes them for at most ``shutdown_timeout_s`` and counts what it could not write.
Error text shown anywhere passes through :func:`encoders.redis_records.connection.redact_secrets`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from encoders.redis_records.connection import redact_secrets
from encoders.runtime.model_version import ModelVersion
from encoders.serving.metrics import ServiceMetrics
from encoders.serving.protocols import QueryVectorStore

PROBE_KEY = "__searchsage_health_probe__"
STATE_DISABLED, STATE_OK, STATE_DOWN = "disabled", "ok", "down"
log = logging.getLogger("searchsage.serve")


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` says the store as a whole is unusable (vs. a problem with some keys)."""
    import redis

    from encoders.redis_records.connection import RedisUnavailable

    if isinstance(exc, (RedisUnavailable, redis.ConnectionError, redis.TimeoutError, redis.AuthenticationError,
                        ConnectionError, TimeoutError, asyncio.TimeoutError, OSError)):
        return True
    if isinstance(exc, redis.ResponseError):  # server-wide states, not per-key answers
        head = str(exc).split(" ", 1)[0].upper()
        return head in {"NOAUTH", "WRONGPASS", "LOADING", "MISCONF", "READONLY", "MASTERDOWN", "CLUSTERDOWN", "BUSY"}
    return False


@dataclass
class StoreHealth:
    """What ``/health`` reports about the store (``address`` and ``last_error`` are redacted)."""

    state: str
    last_error: str | None
    retry_in_s: float | None
    consecutive_failures: int
    pending_write_rows: int
    address: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "state": self.state,
            "address": self.address,
            "last_error": self.last_error,
            "retry_in_s": None if self.retry_in_s is None else round(self.retry_in_s, 3),
            "consecutive_failures": self.consecutive_failures,
            "pending_write_rows": self.pending_write_rows,
        }


@dataclass
class Lookup:
    """``matrix`` (N, D) / ``found`` (N,) rows to serve; ``writable`` (N,) misses this service may
    write back and ``expect`` the ``model_version`` bytes seen for them (compare-and-set)."""

    matrix: np.ndarray
    found: np.ndarray
    writable: np.ndarray
    expect: list[bytes | None]


class CacheThrough:
    """Store lookups and write-backs with a health state and background reconnection.

    Args:
        store: the online-store fast path, or ``None`` to serve from the encoder only. A store with
            ``lookup``/``write_if`` (:class:`~encoders.serving.store.QueryEmbeddingCache`) gets the
            model-version rule and compare-and-set writes; a plain ``fetch``/``write`` store is trusted.
        dim: D, the embedding width (rows returned for misses are zeros of this width).
        model_version: this model's version, written with every record; a stored row is served only
            if :func:`~encoders.runtime.model_version.is_compatible` with it.
        metrics: hit/miss/write counters are recorded here.
        timeout_s: a lookup slower than this is treated as a store failure (all miss).
        max_pending_rows: write-back rows buffered at most; more are dropped (counted).
        write_back: write misses back (off for a variant that is unsafe to store).
        shutdown_timeout_s: how long :meth:`aclose` flushes queued write-backs.
    """

    def __init__(
        self,
        store: QueryVectorStore | None,
        *,
        dim: int,
        model_version: str | ModelVersion,
        metrics: ServiceMetrics,
        timeout_s: float = 0.25,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        max_pending_rows: int = 50_000,
        write_back: bool = True,
        shutdown_timeout_s: float = 5.0,
    ) -> None:
        self.store = store
        self.dim = dim
        self.version = ModelVersion.parse(model_version)
        self.model_version = str(model_version)
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.max_pending_rows = max_pending_rows
        self.write_back = write_back
        self.shutdown_timeout_s = shutdown_timeout_s
        self.state = STATE_DISABLED if store is None else STATE_OK
        self.last_error: str | None = None
        self.failures = 0
        self.stale = 0  # rows found under another model_version (treated as misses)
        self.started_at = time.time()  # rows of another version written after this are left alone
        self._secret_source = str(getattr(store, "connection", "") or "")
        self.address = getattr(store, "address", None) if store is not None else None
        self._backoff = retry_initial_s
        self._next_retry = 0.0
        self._pending: list[tuple[list[str], np.ndarray, list[bytes | None] | None]] = []
        self._pending_rows = 0
        self._writing_rows = 0
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="searchsage-store")
        self._wake_writer: asyncio.Event | None = None
        self._wake_prober: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def describe(self, exc: BaseException | str) -> str:
        """``Type: message`` of an error, with any password redacted (what health and logs show)."""
        text = exc if isinstance(exc, str) else (f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        return redact_secrets(text, self._secret_source)

    # --- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the writer and the reconnection task (no-op without a store)."""
        if self.store is None or self._tasks:
            return
        self.started_at = time.time()
        self._wake_writer, self._wake_prober, self._idle = asyncio.Event(), asyncio.Event(), asyncio.Event()
        self._idle.set()
        loop = asyncio.get_running_loop()
        try:  # connect now, so the first request does not pay for it; a dead Redis means degraded
            await asyncio.wait_for(loop.run_in_executor(self._executor, self._probe), timeout=max(2.0, self.timeout_s))
        except Exception as exc:
            self._mark_down(exc)
        self._tasks = [loop.create_task(self._writer()), loop.create_task(self._prober())]

    async def aclose(self) -> None:
        """Flush queued write-backs for at most ``shutdown_timeout_s``, count what is left as
        dropped (``writes_dropped`` and ``shutdown_dropped``), stop background tasks and threads."""
        if self._tasks and self.state == STATE_OK and self.shutdown_timeout_s > 0:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.flush(), timeout=self.shutdown_timeout_s)
        left = self._pending_rows + self._writing_rows
        if left:
            self.metrics.writes_dropped += left
            self.metrics.shutdown_dropped += left
            log.warning("shutdown: %d queued write-back rows were not confirmed written within %.1f s",
                        left, self.shutdown_timeout_s)
        self._pending, self._pending_rows, self._writing_rows = [], 0, 0
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
        return StoreHealth(self.state, self.last_error, retry, self.failures, self._pending_rows, self.address)

    def _mark_down(self, exc: BaseException | str) -> None:
        self.metrics.store_errors += 1
        self.last_error = self.describe(exc)
        self.failures += 1
        if self.state != STATE_DOWN:
            log.warning("online store %s is down (%s); serving from the encoder alone", self.address, self.last_error)
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
    def _all_miss(self, n: int) -> Lookup:
        return Lookup(np.zeros((n, self.dim), dtype=np.float32), np.zeros(n, dtype=bool),
                      np.ones(n, dtype=bool), [None] * n)

    async def lookup(self, keys: list[str]) -> Lookup:
        """Fetch ``keys``; never raises. While the store is down or disabled, or when this lookup
        fails, every row is a miss (``bypassed`` / ``lookup_errors``)."""
        n = len(keys)
        if self.state != STATE_OK or self.store is None or n == 0:
            if self.store is not None:
                self.metrics.record_cache(0, 0, bypassed=n)
            return self._all_miss(n)
        loop = asyncio.get_running_loop()
        try:
            result = await asyncio.wait_for(
                loop.run_in_executor(self._executor, self._lookup_sync, keys), timeout=self.timeout_s
            )
        except asyncio.TimeoutError:
            self._mark_down(f"lookup took longer than {self.timeout_s * 1000:.0f} ms")
            self.metrics.record_cache(0, 0, bypassed=n)
            return self._all_miss(n)
        except Exception as exc:  # never fails the request; only a connection failure degrades
            self.metrics.record_cache(0, 0, bypassed=n)
            if is_connection_error(exc):
                self._mark_down(exc)
            else:
                self.metrics.lookup_errors += 1
                log.warning("store lookup failed for one request (%s); answered from the encoder", self.describe(exc))
            return self._all_miss(n)
        hits = int(result.found.sum())
        self.metrics.record_cache(hits, n - hits)
        return result

    def _lookup_sync(self, keys: list[str]) -> Lookup:
        """Rows this model may serve (the model-version rule); runs in a store thread."""
        assert self.store is not None
        n = len(keys)
        rich = getattr(self.store, "lookup", None)
        if callable(rich):
            r = rich(keys, self.version, self.started_at)
            self.stale += int(r.stale)
            self.metrics.bad_records += int(r.bad)
            self.metrics.foreign_kept += int(r.foreign)
            return Lookup(np.asarray(r.matrix, dtype=np.float32).reshape(n, self.dim), r.found, r.writable, r.expect)
        with_versions = getattr(self.store, "fetch_with_versions", None)
        if callable(with_versions):
            matrix, found, versions = with_versions(keys)
            found = np.asarray(found, dtype=bool).reshape(n)
            current = np.fromiter((self.version.serves(v) for v in versions), dtype=bool, count=n)
            self.stale += int((found & ~current).sum())
            found = found & current
        else:
            matrix, found = self.store.fetch(keys)
            found = np.asarray(found, dtype=bool).reshape(n)
        return Lookup(np.array(matrix, dtype=np.float32).reshape(n, self.dim), found, ~found, [None] * n)

    # --- write-back -----------------------------------------------------------------------------
    def schedule_write(self, keys: list[str], matrix: np.ndarray, expect: list[bytes | None] | None = None) -> None:
        """Queue ``(N, D)`` rows for the background writer; dropped (counted) when the store is down.
        ``expect``: the ``model_version`` bytes the lookup saw per key (compare-and-set)."""
        if self.store is None or not keys or not self.write_back:
            return
        if self.state != STATE_OK or self._pending_rows + len(keys) > self.max_pending_rows:
            self.metrics.writes_dropped += len(keys)
            return
        self._pending.append((list(keys), matrix, expect))
        self._pending_rows += len(keys)
        assert self._wake_writer is not None and self._idle is not None
        self._idle.clear()
        self._wake_writer.set()

    def _drop_pending(self) -> None:
        self.metrics.writes_dropped += self._pending_rows
        self._pending, self._pending_rows = [], 0
        if self._idle is not None and not self._writing_rows:
            self._idle.set()

    async def flush(self) -> None:
        """Wait until every queued write-back has been written (or dropped)."""
        if self._idle is not None:
            await self._idle.wait()

    def _write_sync(self, groups: list[tuple[list[str], np.ndarray, list[bytes | None] | None]]) -> tuple[int, int]:
        """Write the coalesced rows of ``groups`` -> ``(written, conflicts)``; runs in a store thread."""
        assert self.store is not None
        rows: dict[str, tuple[np.ndarray, bytes | None]] = {}
        for keys, mat, expect in groups:
            for i, k in enumerate(keys):
                rows.setdefault(k, (mat[i], None if expect is None else expect[i]))
        keys = list(rows)
        matrix = np.stack([rows[k][0] for k in keys]).astype(np.float32, copy=False)
        write_if = getattr(self.store, "write_if", None)
        if callable(write_if):
            written = int(write_if(keys, matrix, self.model_version, [rows[k][1] for k in keys]))
            return written, len(keys) - written
        self.store.write(keys, matrix, self.model_version)
        return len(keys), 0

    async def _write(self, batch: list[tuple[list[str], np.ndarray, list[bytes | None] | None]]) -> None:
        loop = asyncio.get_running_loop()
        try:
            written, conflicts = await loop.run_in_executor(self._executor, self._write_sync, batch)
        except Exception as exc:
            if is_connection_error(exc):
                self.metrics.write_errors += sum(len(k) for k, _, _ in batch)
                self._mark_down(exc)
            elif len(batch) > 1:  # a per-key problem: write request by request, keep the good ones
                for group in batch:
                    await self._write([group])
            else:
                self.metrics.write_errors += len(batch[0][0])
                log.warning("write-back of %d rows failed (%s)", len(batch[0][0]), self.describe(exc))
            return
        self.metrics.writes += written
        self.metrics.write_conflicts += conflicts

    async def _writer(self) -> None:
        assert self._wake_writer is not None and self._idle is not None and self.store is not None
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            if not self._pending:
                self._idle.set()
                continue
            batch, self._pending, self._pending_rows = self._pending, [], 0
            self._writing_rows = sum(len(k) for k, _, _ in batch)
            try:
                await self._write(batch)
            finally:
                self._writing_rows = 0
            if self._pending:
                self._wake_writer.set()
            else:
                self._idle.set()

    # --- reconnection ---------------------------------------------------------------------------
    def _probe(self) -> None:
        assert self.store is not None
        self._lookup_sync([PROBE_KEY])  # the whole lookup path: connection, imports, decoding

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
                self.last_error = self.describe(exc)
                self._backoff = min(self._backoff * 2, self.retry_max_s)
                self._next_retry = time.monotonic() + self._backoff
            else:
                self._mark_ok()
