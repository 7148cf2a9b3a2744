"""Dynamic batching: concurrent requests share encoder calls, without costing a quiet service latency.

:class:`DynamicBatcher` queues the queries of every request. When an encoder worker is free,
whatever is queued runs at once (up to ``max_batch`` queries and ``max_batch_tokens`` estimated
tokens); while every worker is busy, requests accumulate, so batches grow with load by themselves
(continuous batching, as text-embeddings-inference does). ``max_wait_ms`` (default 0) optionally
holds an idle encoder back for companions. The queue is bounded: beyond ``max_queue`` queries a
request fails fast with :class:`Overloaded` (HTTP 503 + ``Retry-After``).

A failing encoder call never fails batch-mates: the batch is split in halves and retried until
the failure is isolated to the request that causes it. :class:`UnbatchedRunner` is the baseline:
each request is one encoder call.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from encoders.runtime.encoder import Encoder
from encoders.serving.metrics import ServiceMetrics


class EncoderFailure(RuntimeError):
    """The encoder raised or returned a malformed matrix; the message says which."""


class Overloaded(RuntimeError):
    """The queue is full (or the service is stopping): retry after ``retry_after_s`` seconds."""

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


def estimate_tokens(text: str, cap: int | None = None) -> int:
    """A cheap token estimate for the batch budget: ``[CLS]``/``[SEP]`` plus ~4 characters per
    token, at most ``cap`` (the model's ``max_length``: longer inputs are truncated anyway)."""
    n = 2 + math.ceil(len(text) / 4)
    return min(n, cap) if cap else n


@dataclass
class _Pending:
    texts: list[str]
    tokens: int
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)


def _check_matrix(out: object, n: int, dim: int) -> np.ndarray:
    """Validate an encoder result: ``(n, dim)`` float32, else :class:`EncoderFailure`."""
    arr = np.asarray(out)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] != dim:
        raise EncoderFailure(f"encoder returned shape {arr.shape}, expected ({n}, {dim})")
    return arr.astype(np.float32, copy=False)


def _failure(exc: BaseException) -> EncoderFailure:
    return exc if isinstance(exc, EncoderFailure) else EncoderFailure(f"encoder failed: {type(exc).__name__}: {exc}")


class _RunnerBase:
    """Shared thread pool, metrics, queue bound and lifecycle of both runners."""

    def __init__(self, encoder: Encoder, *, workers: int = 1, max_queue: int | None = None,
                 metrics: ServiceMetrics | None = None) -> None:
        if max_queue is not None and max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        self.encoder = encoder
        self.workers = workers
        self.max_queue = max_queue
        self.metrics = metrics if metrics is not None else ServiceMetrics()
        self.dim = int(encoder.dim)
        self._queued = 0
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="searchsage-encode")

    @property
    def queued(self) -> int:
        """Queries admitted and not yet answered by the encoder."""
        return self._queued

    def _admit(self, n: int) -> None:
        """Reserve room for ``n`` queries or raise :class:`Overloaded` (a lone request always fits)."""
        if self._closing:
            self.metrics.rejected += 1
            raise Overloaded("the service is shutting down")
        if self.max_queue is not None and self._queued and self._queued + n > self.max_queue:
            self.metrics.rejected += 1
            raise Overloaded(f"overloaded: {self._queued} queries are waiting (limit {self.max_queue}); retry shortly")
        self._queued += n

    def _encode_timed(self, texts: list[str]) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        out = _check_matrix(self.encoder.encode(texts), len(texts), self.dim)
        return out, time.perf_counter() - t0

    async def start(self) -> None:
        """Start background work (no-op for the unbatched runner)."""

    async def aclose(self) -> None:
        self._closing = True
        self._executor.shutdown(wait=True, cancel_futures=True)


class UnbatchedRunner(_RunnerBase):
    """Baseline without batching: each request's queries are one encoder call."""

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` -> ``(len(texts), dim)`` float32, in a worker thread."""
        loop = asyncio.get_running_loop()
        self._admit(len(texts))
        t0 = time.perf_counter()
        try:
            out, secs = await loop.run_in_executor(self._executor, self._encode_timed, list(texts))
        except Exception as exc:
            self.metrics.encoder_errors += 1
            raise _failure(exc) from exc
        finally:
            self._queued -= len(texts)
        self.metrics.record_batch(len(texts), secs, [time.perf_counter() - t0 - secs])
        return out


class DynamicBatcher(_RunnerBase):
    """Groups the queries of concurrent :meth:`encode` calls into shared encoder batches.

    Args:
        encoder: anything with ``encode(list[str]) -> (N, D) float32`` and ``dim``.
        max_batch: most queries per encoder call (a larger request is split into chunks).
        max_batch_tokens: most estimated tokens per encoder call (``token_count`` summed).
        max_wait_ms: how long an idle encoder waits for companions of the oldest query (0: none).
        max_queue: most queries waiting; more raise :class:`Overloaded` (``None``: unbounded).
        workers: encoder threads; at most one batch in flight per worker.
        metrics: where batch sizes, timings and rejections are recorded.
        token_count: the per-query token estimate (default :func:`estimate_tokens`).
    """

    def __init__(
        self,
        encoder: Encoder,
        *,
        max_batch: int = 256,
        max_batch_tokens: int = 16384,
        max_wait_ms: float = 0.0,
        max_queue: int | None = 2048,
        workers: int = 1,
        metrics: ServiceMetrics | None = None,
        token_count: Callable[[str], int] | None = None,
    ) -> None:
        super().__init__(encoder, workers=workers, max_queue=max_queue, metrics=metrics)
        if max_batch < 1 or max_wait_ms < 0 or max_batch_tokens < 1:
            raise ValueError(
                f"max_batch and max_batch_tokens must be >= 1 and max_wait_ms >= 0, got "
                f"{max_batch}, {max_batch_tokens}, {max_wait_ms}"
            )
        self.max_batch = max_batch
        self.max_batch_tokens = max_batch_tokens
        self.max_wait_s = max_wait_ms / 1000.0
        self.token_count = token_count or estimate_tokens
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0  # queries in self._queue (admitted ones in flight are not counted)
        self._queued_tokens = 0
        self._signal: asyncio.Future[None] | None = None  # what _run is waiting on
        self._filling = False  # _run holds a free worker and waits max_wait for a full batch
        self._slots: asyncio.Semaphore | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Future[object]] = set()

    async def start(self) -> None:
        """Start the flushing task on the running loop (idempotent)."""
        if self._task is None:
            self._slots = asyncio.Semaphore(self.workers)
            self._task = asyncio.get_running_loop().create_task(self._run(), name="searchsage-batcher")

    async def aclose(self) -> None:
        """Stop flushing, fail queued requests, wait for batches in flight."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while self._queue:
            p = self._queue.popleft()
            if not p.future.done():
                p.future.set_exception(Overloaded("the service is shutting down"))
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await super().aclose()

    def _chunks(self, texts: list[str]) -> list[tuple[list[str], int]]:
        """Split one request into pieces of <= ``max_batch`` queries and <= ``max_batch_tokens``."""
        out: list[tuple[list[str], int]] = []
        cur: list[str] = []
        tokens = 0
        for t in texts:
            n = self.token_count(t)
            if cur and (len(cur) >= self.max_batch or tokens + n > self.max_batch_tokens):
                out.append((cur, tokens))
                cur, tokens = [], 0
            cur.append(t)
            tokens += n
        if cur:
            out.append((cur, tokens))
        return out

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` -> ``(len(texts), dim)`` float32 via shared batches.

        Raises :class:`Overloaded` at once when the queue is full, :class:`EncoderFailure` when
        the encoder fails on these texts (never because of another request's texts).
        """
        if self._task is None:
            await self.start()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._admit(len(texts))
        loop = asyncio.get_running_loop()
        futures = []
        for chunk, tokens in self._chunks(texts):
            fut: asyncio.Future[np.ndarray] = loop.create_future()
            self._queue.append(_Pending(chunk, tokens, fut))
            self._queued_rows += len(chunk)
            self._queued_tokens += tokens
            futures.append(fut)
        if self._signal is not None and (not self._filling or self._full()):
            _wake(self._signal)
        try:
            parts = await asyncio.gather(*futures)
        finally:
            for f in futures:
                if not f.done():
                    f.cancel()  # the client went away: _take skips it
        return parts[0] if len(parts) == 1 else np.vstack(parts)

    def _full(self) -> bool:
        return self._queued_rows >= self.max_batch or self._queued_tokens >= self.max_batch_tokens

    async def _run(self) -> None:
        assert self._slots is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:  # nothing queued: sleep until encode() queues something
                self._signal = loop.create_future()
                await self._signal
                self._signal = None
                continue
            await self._slots.acquire()  # a free worker; while all are busy, the queue keeps filling
            if self.max_wait_s > 0 and self._queue and not self._full():
                remaining = self._queue[0].enqueued + self.max_wait_s - time.perf_counter()
                if remaining > 0:  # optional: hold the idle worker back for companions
                    self._filling = True
                    self._signal = loop.create_future()
                    timer = loop.call_later(remaining, _wake, self._signal)
                    await self._signal
                    timer.cancel()
                    self._signal, self._filling = None, False
            batch = self._take()
            if batch:
                self._launch(batch)
            else:
                self._slots.release()

    def _take(self) -> list[_Pending]:
        """Pop whole chunks, oldest first, within ``max_batch`` and ``max_batch_tokens``; skip
        those whose client went away."""
        batch: list[_Pending] = []
        rows = tokens = 0
        while self._queue:
            p = self._queue[0]
            if p.future.done():  # cancelled: the client went away
                self._queue.popleft()
                self._queued_rows -= len(p.texts)
                self._queued_tokens -= p.tokens
                self._queued -= len(p.texts)
                continue
            if batch and (rows + len(p.texts) > self.max_batch or tokens + p.tokens > self.max_batch_tokens):
                break
            self._queue.popleft()
            self._queued_rows -= len(p.texts)
            self._queued_tokens -= p.tokens
            batch.append(p)
            rows += len(p.texts)
            tokens += p.tokens
        return batch

    def _encode_isolating(self, groups: list[list[str]]) -> tuple[list[np.ndarray | BaseException], float, int, int]:
        """Encode the texts of all ``groups`` in one call; if it fails, split the groups in halves
        and retry each, so a failure ends up only with the group (request) that causes it.

        Returns ``(per-group matrix or exception, seconds, unique texts encoded, splits)``.
        Runs in a worker thread.
        """
        results: list[np.ndarray | BaseException] = [EncoderFailure("not encoded")] * len(groups)
        splits = 0
        size = 0

        def attempt(idx: list[int]) -> None:
            nonlocal splits, size
            unique = list(dict.fromkeys(t for i in idx for t in groups[i]))  # identical queries: one row
            try:
                matrix = _check_matrix(self.encoder.encode(unique), len(unique), self.dim)
            except Exception as exc:
                if len(idx) == 1:
                    results[idx[0]] = _failure(exc)
                    return
                splits += 1
                mid = len(idx) // 2
                attempt(idx[:mid])
                attempt(idx[mid:])
                return
            size = max(size, len(unique))
            row = {t: r for r, t in enumerate(unique)}
            for i in idx:
                results[i] = matrix[[row[t] for t in groups[i]]]

        t0 = time.perf_counter()
        attempt(list(range(len(groups))))
        return results, time.perf_counter() - t0, size, splits

    def _launch(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        waits = [started - p.enqueued for p in batch]
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self._executor, self._encode_isolating, [p.texts for p in batch])
        self._inflight.add(fut)

        def done(f: asyncio.Future[tuple[list[np.ndarray | BaseException], float, int, int]]) -> None:
            self._inflight.discard(f)
            assert self._slots is not None
            self._slots.release()
            self._queued -= sum(len(p.texts) for p in batch)
            if f.cancelled() or f.exception() is not None:
                err = EncoderFailure("encoder call was cancelled") if f.cancelled() else _failure(f.exception())  # type: ignore[arg-type]
                outcomes: list[np.ndarray | BaseException] = [err] * len(batch)
                secs, size, splits = time.perf_counter() - started, 0, 0
            else:
                outcomes, secs, size, splits = f.result()
            self.metrics.batch_splits += splits
            if size:
                self.metrics.record_batch(size, secs, waits)
            for p, out in zip(batch, outcomes, strict=True):
                if isinstance(out, BaseException):
                    self.metrics.encoder_errors += 1
                    if not p.future.done():
                        p.future.set_exception(out)
                elif not p.future.done():
                    p.future.set_result(out)

        fut.add_done_callback(done)


def _wake(signal: asyncio.Future[None]) -> None:
    if not signal.done():
        signal.set_result(None)


def make_runner(
    encoder: Encoder,
    *,
    batching: bool = True,
    max_batch: int = 256,
    max_batch_tokens: int = 16384,
    max_wait_ms: float = 0.0,
    max_queue: int | None = 2048,
    workers: int = 1,
    metrics: ServiceMetrics | None = None,
    token_count: Callable[[str], int] | None = None,
) -> DynamicBatcher | UnbatchedRunner:
    """The batcher, or the unbatched baseline when ``batching`` is false (same queue bound)."""
    if batching:
        return DynamicBatcher(
            encoder, max_batch=max_batch, max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms,
            max_queue=max_queue, workers=workers, metrics=metrics, token_count=token_count,
        )
    return UnbatchedRunner(encoder, workers=workers, max_queue=max_queue, metrics=metrics)
