"""Dynamic batching: concurrent requests share encoder calls.

:class:`DynamicBatcher` queues the queries of every request and flushes a batch when it holds
``max_batch`` queries or when its oldest query has waited ``max_wait_ms`` (default 5 ms). The
encoder runs in a thread pool off the event loop with one batch in flight per worker thread;
while all workers are busy the next batch keeps filling (up to ``max_batch``), so batches grow
with load. :class:`UnbatchedRunner` is the baseline: each request is one encoder call.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from encoders.serving.metrics import ServiceMetrics
from encoders.serving.protocols import Encoder


class EncoderFailure(RuntimeError):
    """The encoder raised or returned a malformed matrix; the message says which."""


@dataclass
class _Pending:
    texts: list[str]
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)


def _check_matrix(out: object, n: int, dim: int) -> np.ndarray:
    """Validate an encoder result: ``(n, dim)`` float32, else :class:`EncoderFailure`."""
    arr = np.asarray(out)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] != dim:
        raise EncoderFailure(f"encoder returned shape {arr.shape}, expected ({n}, {dim})")
    return arr.astype(np.float32, copy=False)


class _RunnerBase:
    """Shared thread pool, metrics and lifecycle of both runners."""

    def __init__(self, encoder: Encoder, *, workers: int = 1, metrics: ServiceMetrics | None = None) -> None:
        self.encoder = encoder
        self.workers = workers
        self.metrics = metrics if metrics is not None else ServiceMetrics()
        self.dim = int(encoder.dim)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="searchsage-encode")

    def _encode_timed(self, texts: list[str]) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        out = _check_matrix(self.encoder.encode(texts), len(texts), self.dim)
        return out, time.perf_counter() - t0

    async def start(self) -> None:
        """Start background work (no-op for the unbatched runner)."""

    async def aclose(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class UnbatchedRunner(_RunnerBase):
    """Baseline without batching: each request's queries are one encoder call."""

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` -> ``(len(texts), dim)`` float32, in a worker thread."""
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            out, secs = await loop.run_in_executor(self._executor, self._encode_timed, list(texts))
        except Exception as exc:
            self.metrics.encoder_errors += 1
            raise EncoderFailure(f"encoder failed: {type(exc).__name__}: {exc}") from exc
        self.metrics.record_batch(len(texts), secs, [time.perf_counter() - t0 - secs])
        return out


class DynamicBatcher(_RunnerBase):
    """Groups the queries of concurrent :meth:`encode` calls into shared encoder batches.

    Args:
        encoder: anything with ``encode(list[str]) -> (N, D) float32`` and ``dim``.
        max_batch: most queries per encoder call (a larger request is split into chunks).
        max_wait_ms: longest the oldest queued query waits before its batch is flushed.
        workers: encoder threads; at most one batch in flight per worker.
        metrics: where batch sizes and timings are recorded.
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        max_batch: int = 256,
        max_wait_ms: float = 5.0,
        workers: int = 1,
        metrics: ServiceMetrics | None = None,
    ) -> None:
        super().__init__(encoder, workers=workers, metrics=metrics)
        if max_batch < 1 or max_wait_ms < 0:
            raise ValueError(f"max_batch must be >= 1 and max_wait_ms >= 0, got {max_batch}, {max_wait_ms}")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self._queue: deque[_Pending] = deque()
        self._queued = 0
        self._signal: asyncio.Future[None] | None = None  # what _run is waiting on
        self._idle = True  # _run waits for a first query (True) or for a full batch (False)
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Future[object]] = set()

    @property
    def queued(self) -> int:
        """Queries waiting for a batch."""
        return self._queued

    async def start(self) -> None:
        """Start the flushing task on the running loop (idempotent)."""
        if self._task is None:
            self._slots = asyncio.Semaphore(self.workers)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="searchsage-batcher")

    async def aclose(self) -> None:
        """Stop flushing, fail queued requests, wait for batches in flight."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            p = self._queue.popleft()
            if not p.future.done():
                p.future.set_exception(EncoderFailure("service is shutting down"))
        self._queued = 0
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await super().aclose()

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` -> ``(len(texts), dim)`` float32 via shared batches."""
        if self._task is None:
            await self.start()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if len(texts) > self.max_batch:
            chunks = [texts[i : i + self.max_batch] for i in range(0, len(texts), self.max_batch)]
            parts = await asyncio.gather(*(self.encode(c) for c in chunks))
            return np.vstack(parts)
        fut: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(texts, fut))
        self._queued += len(texts)
        if self._signal is not None and (self._idle or self._queued >= self.max_batch):
            _wake(self._signal)
        return await fut

    async def _run(self) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:  # idle: sleep until encode() queues something
                self._idle = True
                self._signal = loop.create_future()
                await self._signal
                continue
            # Wait until the batch is full or its oldest query has waited max_wait. encode() only
            # wakes us when the batch fills, so waiting costs one timer per batch, not per request.
            remaining = self._queue[0].enqueued + self.max_wait_s - time.perf_counter()
            if self._queued < self.max_batch and remaining > 0:
                self._idle = False
                self._signal = loop.create_future()
                timer = loop.call_later(remaining, _wake, self._signal)
                await self._signal
                timer.cancel()
            self._signal = None
            await self._slots.acquire()  # one batch in flight per worker; the queue keeps filling
            batch = self._take()
            if batch:
                self._launch(batch)
            else:
                self._slots.release()

    def _take(self) -> list[_Pending]:
        """Pop whole requests, oldest first, up to ``max_batch`` queries; skip cancelled ones."""
        batch: list[_Pending] = []
        size = 0
        while self._queue:
            p = self._queue[0]
            if p.future.done():  # the client went away
                self._queue.popleft()
                self._queued -= len(p.texts)
                continue
            if batch and size + len(p.texts) > self.max_batch:
                break
            self._queue.popleft()
            self._queued -= len(p.texts)
            batch.append(p)
            size += len(p.texts)
        return batch

    def _launch(self, batch: list[_Pending]) -> None:
        unique = list(dict.fromkeys(t for p in batch for t in p.texts))  # identical queries: one row
        started = time.perf_counter()
        waits = [started - p.enqueued for p in batch]
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self._encode_timed, unique)
        self._inflight.add(fut)

        def done(f: asyncio.Future[tuple[np.ndarray, float]]) -> None:
            self._inflight.discard(f)
            assert self._slots is not None
            self._slots.release()
            if f.cancelled():
                exc: BaseException | None = EncoderFailure("encoder call was cancelled")
            else:
                exc = f.exception()
            if exc is not None:
                self.metrics.encoder_errors += 1
                err = exc if isinstance(exc, EncoderFailure) else EncoderFailure(
                    f"encoder failed: {type(exc).__name__}: {exc}"
                )
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(err)
                return
            matrix, secs = f.result()
            self.metrics.record_batch(len(unique), secs, waits)
            row = {t: i for i, t in enumerate(unique)}
            for p in batch:
                if not p.future.done():
                    p.future.set_result(matrix[[row[t] for t in p.texts]])

        fut.add_done_callback(done)


def _wake(signal: asyncio.Future[None]) -> None:
    if not signal.done():
        signal.set_result(None)


def make_runner(
    encoder: Encoder,
    *,
    batching: bool = True,
    max_batch: int = 256,
    max_wait_ms: float = 5.0,
    workers: int = 1,
    metrics: ServiceMetrics | None = None,
) -> DynamicBatcher | UnbatchedRunner:
    """The batcher, or the unbatched baseline when ``batching`` is false."""
    if batching:
        return DynamicBatcher(encoder, max_batch=max_batch, max_wait_ms=max_wait_ms, workers=workers, metrics=metrics)
    return UnbatchedRunner(encoder, workers=workers, metrics=metrics)
