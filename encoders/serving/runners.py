"""What both encoder runners share: errors, the queue bound, the token estimate, and the
unbatched baseline (:class:`UnbatchedRunner`: each request is one encoder call in a thread pool).

The batched runner is :class:`encoders.serving.batcher.DynamicBatcher`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from encoders.runtime.encoder import Encoder
from encoders.serving.metrics import ServiceMetrics

THREAD_PREFIX = "searchsage-encode"


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


def tokenizer_lengths(encoder: object) -> Callable[[list[str]], list[int]] | None:
    """Exact token counts from the encoder's own tokenizer (``BundleEncoder.tokenizer``, also
    behind a wrapper's ``inner``), or ``None`` when it exposes none."""
    for obj in (encoder, getattr(encoder, "inner", None)):
        tok = getattr(obj, "tokenizer", None)
        encode = getattr(tok, "encode", None)
        if callable(encode):
            return lambda texts: [len(ids) for ids in encode(texts)]
    return None



def check_matrix(out: object, n: int, dim: int) -> np.ndarray:
    """Validate an encoder result: ``(n, dim)`` float32, else :class:`EncoderFailure`."""
    arr = np.asarray(out)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] != dim:
        raise EncoderFailure(f"encoder returned shape {arr.shape}, expected ({n}, {dim})")
    return arr.astype(np.float32, copy=False)


def as_failure(exc: BaseException) -> EncoderFailure:
    """``exc`` as the :class:`EncoderFailure` a request is failed with."""
    return exc if isinstance(exc, EncoderFailure) else EncoderFailure(f"encoder failed: {type(exc).__name__}: {exc}")


class RunnerBase:
    """Shared metrics, queue bound and lifecycle of both runners."""

    def __init__(self, encoder: Encoder, *, workers: int = 1, max_queue: int | None = None,
                 metrics: ServiceMetrics | None = None) -> None:
        if max_queue is not None and max_queue < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue}")
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        self.encoder = encoder
        self.workers = workers
        self.max_queue = max_queue
        self.metrics = metrics if metrics is not None else ServiceMetrics()
        self.dim = int(encoder.dim)
        self._queued = 0
        self._closing = False

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

    async def start(self) -> None:
        """Start background work (no-op for the unbatched runner)."""

    async def aclose(self) -> None:
        self._closing = True


class UnbatchedRunner(RunnerBase):
    """Baseline without batching: each request's queries are one encoder call (thread pool)."""

    def __init__(self, encoder: Encoder, *, workers: int = 1, max_queue: int | None = None,
                 metrics: ServiceMetrics | None = None) -> None:
        super().__init__(encoder, workers=workers, max_queue=max_queue, metrics=metrics)
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=THREAD_PREFIX)

    def _encode_timed(self, texts: list[str]) -> tuple[np.ndarray, float]:
        t0 = time.perf_counter()
        out = check_matrix(self.encoder.encode(texts), len(texts), self.dim)
        return out, time.perf_counter() - t0

    async def encode(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` -> ``(len(texts), dim)`` float32, in a worker thread."""
        loop = asyncio.get_running_loop()
        self._admit(len(texts))
        t0 = time.perf_counter()
        try:
            out, secs = await loop.run_in_executor(self._executor, self._encode_timed, list(texts))
        except Exception as exc:
            self.metrics.encoder_errors += 1
            raise as_failure(exc) from exc
        finally:
            self._queued -= len(texts)
        self.metrics.record_batch(len(texts), secs, [time.perf_counter() - t0 - secs])
        return out

    async def aclose(self) -> None:
        await super().aclose()
        self._executor.shutdown(wait=True, cancel_futures=True)

