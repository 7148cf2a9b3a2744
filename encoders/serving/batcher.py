"""Dynamic batching: concurrent requests share encoder calls, without costing a quiet service latency.

:class:`DynamicBatcher` queues the queries of every request for ``workers`` dedicated encoder
threads. A free worker takes whatever is queued at once (up to ``max_batch`` queries and
``max_batch_tokens`` estimated tokens) and, when it finishes, takes the next batch itself, without
a round trip through the event loop; while every worker is busy, requests accumulate, so batches
grow with load by themselves (continuous batching, as text-embeddings-inference does). A lone
request on an idle service is handed straight to a waiting worker: it pays no batch window and no
more hand-offs than the unbatched baseline, whatever ``max_wait_ms`` says. ``max_wait_ms`` (default
0) only matters when several requests already wait for an idle worker: the batch may then fill
until its oldest request has waited that long. The queue is bounded: beyond ``max_queue`` queries
a request fails fast with :class:`Overloaded` (HTTP 503 + ``Retry-After``).

Each batch is encoded in calls of similar token length (:mod:`encoders.runtime.length_groups`)
when the encoder exposes its tokenizer, so short queries are not padded to a long batch-mate.
A failing encoder call never fails batch-mates: the batch is split in halves and retried until
the failure is isolated to the request that causes it. :class:`UnbatchedRunner`
(:mod:`encoders.serving.runners`) is the baseline: each request is one encoder call.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from encoders.runtime.encoder import Encoder
from encoders.runtime.length_groups import DEFAULT_CALL_OVERHEAD_TOKENS, plan_groups
from encoders.serving.metrics import ServiceMetrics
from encoders.serving.runners import (
    THREAD_PREFIX,
    EncoderFailure,
    Overloaded,
    RunnerBase,
    UnbatchedRunner,
    as_failure,
    check_matrix,
    estimate_tokens,
    tokenizer_lengths,
)

__all__ = [
    "DynamicBatcher", "EncoderFailure", "Overloaded", "UnbatchedRunner", "estimate_tokens", "make_runner",
    "tokenizer_lengths",
]


@dataclass(eq=False)
class _Pending:
    texts: list[str]
    tokens: int
    future: asyncio.Future[np.ndarray]
    enqueued: float = field(default_factory=time.perf_counter)
    cancelled: bool = False  # the client went away: workers skip it (set on the loop)
    settled: bool = False  # counted out of ``queued`` (loop only)


_Outcome = np.ndarray | BaseException


class _Once:
    """``fn(*args)`` the first time it is called, nothing after."""

    def __init__(self, fn: Callable[..., None], *args: object) -> None:
        self._call: tuple[Callable[..., None], tuple[object, ...]] | None = (fn, args)

    def __call__(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call[0](*call[1])


class DynamicBatcher(RunnerBase):
    """Groups the queries of concurrent :meth:`encode` calls into shared encoder batches.

    Args:
        encoder: anything with ``encode(list[str]) -> (N, D) float32`` and ``dim``; called from
            the worker threads (concurrently when ``workers > 1``).
        max_batch: most queries per batch (a larger request is split into chunks).
        max_batch_tokens: most estimated tokens per batch (``token_count`` summed).
        max_wait_ms: when several requests wait for an idle worker, how long the batch may fill,
            counted from its oldest request (0: never); a lone request never waits.
        max_queue: most queries waiting; more raise :class:`Overloaded` (``None``: unbounded).
        workers: encoder threads, one batch in flight each.
        metrics: where batch sizes, timings and rejections are recorded.
        token_count: the per-query token estimate for the budget (default :func:`estimate_tokens`).
        token_lengths: exact token counts of a list of texts, used to cut a batch into calls of
            similar length (default: the encoder's tokenizer, see :func:`tokenizer_lengths`;
            without one a batch is one call).
        call_overhead_tokens: fixed cost of one encoder call in tokens (see
            :mod:`encoders.runtime.length_groups`); ``0`` disables the length grouping.
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
        token_lengths: Callable[[list[str]], list[int]] | None = None,
        call_overhead_tokens: float = DEFAULT_CALL_OVERHEAD_TOKENS,
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
        self.token_lengths = token_lengths if token_lengths is not None else tokenizer_lengths(encoder)
        # a BundleEncoder plans the grouped calls itself, tokenising once (unless lengths are given)
        grouped = getattr(encoder, "encode_grouped", None)
        self._encode_grouped = grouped if callable(grouped) and token_lengths is None else None
        self.call_overhead_tokens = call_overhead_tokens
        # Shared with the workers, guarded by _cond's lock:
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0  # queries in self._queue (taken ones are not counted)
        self._queued_tokens = 0
        self._idle = 0  # workers waiting for work
        self._filling = 0  # workers holding back max_wait for companions
        self._stop = False
        self._threads: list[threading.Thread] = []

    async def start(self) -> None:
        """Start the worker threads (idempotent); each request is answered on its own loop."""
        if self._threads:
            return
        for i in range(self.workers):
            t = threading.Thread(target=self._work, name=f"{THREAD_PREFIX}_{i}", daemon=True)
            t.start()
            self._threads.append(t)

    async def aclose(self) -> None:
        """Stop taking batches, fail queued requests, wait for the batches in flight."""
        self._closing = True
        with self._cond:
            self._stop = True
            left = list(self._queue)
            self._queue.clear()
            self._queued_rows = self._queued_tokens = 0
            self._cond.notify_all()
        for p in left:
            self._settle(p, Overloaded("the service is shutting down"))
        for t in self._threads:  # each finishes its batch and hands it to the loop first
            await asyncio.to_thread(t.join)
        self._threads.clear()
        await asyncio.sleep(0)  # run the hand-offs queued by the last batches

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
        if not self._threads and not self._closing:
            await self.start()
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        self._admit(len(texts))
        loop = asyncio.get_running_loop()
        pending = [_Pending(chunk, tokens, loop.create_future()) for chunk, tokens in self._chunks(texts)]
        with self._cond:
            for p in pending:
                self._queue.append(p)
                self._queued_rows += len(p.texts)
                self._queued_tokens += p.tokens
            if self._idle and not self._filling:
                self._cond.notify()  # straight to a waiting worker
            elif self._filling and (self._idle or self._full()):
                self._cond.notify_all()
        try:
            if len(pending) == 1:
                return await pending[0].future
            return np.vstack(await asyncio.gather(*(p.future for p in pending)))
        finally:
            for p in pending:
                if not p.settled:  # the client went away: workers skip what is still queued
                    p.cancelled = True
                    self._settle(p, None)
                    p.future.cancel()

    def _full(self) -> bool:
        return self._queued_rows >= self.max_batch or self._queued_tokens >= self.max_batch_tokens

    # --- worker threads ------------------------------------------------------------------------
    def _work(self) -> None:
        """A worker: take a batch, encode it, hand the answers to the loop, repeat.

        When the next batch is already queued, its token lengths are counted before the previous
        batch's answers are handed over: the tokenizer lets go of the GIL for a moment, and once the
        loop is busy answering, getting it back can take a whole switch interval (5 ms)."""
        handoff: _Once | None = None  # the previous batch's answers, not handed over yet
        while True:
            batch = self._next_batch(block=handoff is None)
            if batch is None:
                if handoff is None:
                    return  # stopped
                handoff()
                handoff = None
                continue
            started = time.perf_counter()
            try:
                outcomes, secs, size, splits = self._encode_isolating([p.texts for p in batch], handoff)
            except BaseException as exc:  # a bug here must not strand the batch's requests
                outcomes, secs, size, splits = [as_failure(exc)] * len(batch), time.perf_counter() - started, 0, 0
            if handoff is not None:
                handoff()  # no-op when the encode above already did it
            handoff = _Once(self._hand_off, batch, started, outcomes, secs, size, splits)

    def _hand_off(self, batch: list[_Pending], *answers: object) -> None:
        """One ``call_soon_threadsafe`` per batch; the loop settles every request of it."""
        with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits for these any more
            batch[0].future.get_loop().call_soon_threadsafe(self._deliver, batch, *answers)

    def _next_batch(self, block: bool = True) -> list[_Pending] | None:
        """The next batch; ``None`` once stopped or, with ``block=False``, when none is ready now.
        A lone request is taken at once; with ``max_wait`` and others already waiting, the batch
        may fill until the oldest waited that long."""
        with self._cond:
            while not self._stop:
                if not self._queue:
                    if not block:
                        return None
                    self._idle += 1
                    self._cond.wait()
                    self._idle -= 1
                    continue
                if self.max_wait_s > 0 and len(self._queue) > 1 and not self._full():
                    remaining = self._queue[0].enqueued + self.max_wait_s - time.perf_counter()
                    if remaining > 0:  # a batch is forming: optionally hold back for companions
                        if not block:
                            return None
                        self._filling += 1
                        self._cond.wait(remaining)
                        self._filling -= 1
                        continue
                batch = self._take()
                if batch:
                    return batch
            return None

    def _take(self) -> list[_Pending]:
        """Pop whole chunks, oldest first, within ``max_batch`` and ``max_batch_tokens``; skip
        those whose client went away. Called with the lock held."""
        batch: list[_Pending] = []
        rows = tokens = 0
        while self._queue:
            p = self._queue[0]
            if not p.cancelled and batch and (
                rows + len(p.texts) > self.max_batch or tokens + p.tokens > self.max_batch_tokens
            ):
                break
            self._queue.popleft()
            self._queued_rows -= len(p.texts)
            self._queued_tokens -= p.tokens
            if p.cancelled:
                continue
            batch.append(p)
            rows += len(p.texts)
            tokens += p.tokens
        return batch

    def _encode_rows(self, texts: list[str], before: _Once | None = None) -> np.ndarray:
        """``texts`` -> ``(n, dim)``, in calls of similar token length when that saves padding;
        ``before`` runs once the calls are planned, before the first one."""
        if self._encode_grouped is not None and self.call_overhead_tokens > 0:
            return check_matrix(self._encode_grouped(texts, self.call_overhead_tokens, before), len(texts), self.dim)
        groups: list[list[int]] = []
        if self.token_lengths is not None and self.call_overhead_tokens > 0 and len(texts) > 1:
            groups = plan_groups(self.token_lengths(texts), self.call_overhead_tokens)
        if before is not None:
            before()
        if len(groups) <= 1:
            return check_matrix(self.encoder.encode(texts), len(texts), self.dim)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for idx in groups:
            out[idx] = check_matrix(self.encoder.encode([texts[i] for i in idx]), len(idx), self.dim)
        return out

    def _encode_isolating(self, groups: list[list[str]], before: _Once | None = None
                          ) -> tuple[list[_Outcome], float, int, int]:
        """Encode the texts of all ``groups`` (requests) together; if that fails, split the groups
        in halves and retry each, so a failure ends up only with the request that causes it.
        ``before`` runs once, before the first encoder call.

        Returns ``(per-group matrix or exception, seconds, unique texts encoded, splits)``.
        Runs in a worker thread.
        """
        results: list[_Outcome] = [EncoderFailure("not encoded")] * len(groups)
        splits = 0
        size = 0

        def attempt(idx: list[int]) -> None:
            nonlocal splits, size
            if len(idx) == 1:  # one request: no de-duplication bookkeeping needed
                texts = groups[idx[0]]
                unique = texts if len(texts) == 1 else list(dict.fromkeys(texts))
            else:
                unique = list(dict.fromkeys(t for i in idx for t in groups[i]))  # identical queries: one row
            try:
                matrix = self._encode_rows(unique, before)
            except Exception as exc:
                if len(idx) == 1:
                    results[idx[0]] = as_failure(exc)
                    return
                splits += 1
                mid = len(idx) // 2
                attempt(idx[:mid])
                attempt(idx[mid:])
                return
            size = max(size, len(unique))
            if len(idx) == 1 and unique is groups[idx[0]]:
                results[idx[0]] = matrix
                return
            row = {t: r for r, t in enumerate(unique)}
            for i in idx:
                results[i] = matrix[[row[t] for t in groups[i]]]

        t0 = time.perf_counter()
        attempt(list(range(len(groups))))
        return results, time.perf_counter() - t0, size, splits

    # --- back on the event loop ----------------------------------------------------------------
    def _settle(self, p: _Pending, outcome: _Outcome | None) -> None:
        """Count ``p`` out of ``queued`` once and answer its request (``None``: nobody to answer)."""
        if p.settled:
            return
        p.settled = True
        self._queued -= len(p.texts)
        if outcome is None or p.future.done():
            return
        if isinstance(outcome, BaseException):
            p.future.set_exception(outcome)
        else:
            p.future.set_result(outcome)

    def _deliver(self, batch: list[_Pending], started: float, outcomes: list[_Outcome], secs: float,
                 size: int, splits: int) -> None:
        self.metrics.batch_splits += splits
        if size:
            self.metrics.record_batch(size, secs, [started - p.enqueued for p in batch])
        for p, out in zip(batch, outcomes, strict=True):
            if isinstance(out, BaseException):
                self.metrics.encoder_errors += 1
            self._settle(p, out)


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
    call_overhead_tokens: float = DEFAULT_CALL_OVERHEAD_TOKENS,
) -> DynamicBatcher | UnbatchedRunner:
    """The batcher, or the unbatched baseline when ``batching`` is false (same queue bound)."""
    if batching:
        return DynamicBatcher(
            encoder, max_batch=max_batch, max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms,
            max_queue=max_queue, workers=workers, metrics=metrics, token_count=token_count,
            call_overhead_tokens=call_overhead_tokens,
        )
    return UnbatchedRunner(encoder, workers=workers, max_queue=max_queue, metrics=metrics)
