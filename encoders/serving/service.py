"""The embedding service: normalised queries -> cache lookup -> batched encoder for the misses.

Transport-free (the HTTP layer is :mod:`encoders.serving.app`), so it can be driven directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from encoders.runtime.encoder import Encoder
from encoders.runtime.length_groups import DEFAULT_CALL_OVERHEAD_TOKENS
from encoders.runtime.model_version import ModelVersion
from encoders.serving.batcher import DynamicBatcher, UnbatchedRunner, make_runner
from encoders.serving.cache import STATE_DOWN, CacheThrough
from encoders.serving.metrics import ServiceMetrics
from encoders.serving.protocols import QueryVectorStore


@dataclass
class EmbedResult:
    """``matrix``: ``(N, D)`` float32, row ``i`` for query ``i``; ``cached``: ``(N,)`` bool."""

    matrix: np.ndarray
    cached: np.ndarray
    model_version: str


class EmbeddingService:
    """Glue of encoder runner, cache-through and metrics; one per process.

    Args:
        encoder: the query encoder (``BundleEncoder`` in production).
        store: the online-store fast path or ``None``.
        batching / max_batch / max_batch_tokens / max_wait_ms / max_queue / workers / token_count /
            call_overhead_tokens: see :class:`DynamicBatcher`.
        store_timeout_s, retry_initial_s, retry_max_s, write_back, shutdown_timeout_s: see
            :class:`CacheThrough`.
    """

    def __init__(
        self,
        encoder: Encoder,
        store: QueryVectorStore | None = None,
        *,
        batching: bool = True,
        max_batch: int = 256,
        max_batch_tokens: int = 16384,
        max_wait_ms: float = 0.0,
        max_queue: int | None = 2048,
        workers: int = 1,
        store_timeout_s: float = 0.25,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        write_back: bool = True,
        shutdown_timeout_s: float = 5.0,
        token_count: Callable[[str], int] | None = None,
        call_overhead_tokens: float = DEFAULT_CALL_OVERHEAD_TOKENS,
        info: dict[str, object] | None = None,
    ) -> None:
        self.encoder = encoder
        self.metrics = ServiceMetrics()
        self.dim = int(encoder.dim)
        self.model_version = str(encoder.model_version)
        self.version = ModelVersion.parse(self.model_version)
        self.info = dict(info or {})
        self.runner: DynamicBatcher | UnbatchedRunner = make_runner(
            encoder, batching=batching, max_batch=max_batch, max_batch_tokens=max_batch_tokens,
            max_wait_ms=max_wait_ms, max_queue=max_queue, workers=workers, metrics=self.metrics,
            token_count=token_count, call_overhead_tokens=call_overhead_tokens,
        )
        self.cache = CacheThrough(
            store, dim=self.dim, model_version=self.version, metrics=self.metrics,
            timeout_s=store_timeout_s, retry_initial_s=retry_initial_s, retry_max_s=retry_max_s,
            write_back=write_back, shutdown_timeout_s=shutdown_timeout_s,
        )

    async def start(self) -> None:
        await self.runner.start()
        await self.cache.start()

    async def aclose(self) -> None:
        """Finish encoder work first (its misses are queued for write-back), then flush the writes."""
        await self.runner.aclose()
        await self.cache.aclose()

    async def embed(self, queries: list[str]) -> EmbedResult:
        """Embed already-normalised ``queries`` (N) -> :class:`EmbedResult` with ``(N, D)`` rows.

        Duplicates are looked up and encoded once; misses are written back in the background.
        """
        unique = list(dict.fromkeys(queries))
        hit = await self.cache.lookup(unique)
        matrix, found = hit.matrix, hit.found
        if not found.all():
            miss_idx = np.flatnonzero(~found)
            misses = [unique[i] for i in miss_idx]
            vecs = await self.runner.encode(misses)
            matrix[miss_idx] = vecs
            keep = np.flatnonzero(hit.writable[miss_idx])  # not rows another live version owns
            if len(keep):
                self.cache.schedule_write([misses[i] for i in keep], vecs[keep],
                                          [hit.expect[miss_idx[i]] for i in keep])
        if len(unique) == len(queries):
            return EmbedResult(matrix, found, self.model_version)
        pos = {q: i for i, q in enumerate(unique)}
        idx = np.fromiter((pos[q] for q in queries), dtype=np.int64, count=len(queries))
        return EmbedResult(matrix[idx], found[idx], self.model_version)

    def health(self) -> dict[str, object]:
        """``status`` is ``ok``, or ``degraded`` while the store is down (requests still answered)."""
        store = self.cache.health()
        return {
            "status": "degraded" if store.state == STATE_DOWN else "ok",
            "model_version": self.model_version,
            "model_version_parts": self.version.to_dict(),
            "dim": self.dim,
            "batching": isinstance(self.runner, DynamicBatcher),
            "queued_queries": self.runner.queued,
            "store": store.to_dict() | {"write_back": self.cache.write_back and self.cache.store is not None},
            **self.info,
        }
