"""Live query embeddings over HTTP: dynamic batching, cache-through Redis, metrics (no torch).

Entry points: :func:`encoders.serving.server.build_app` / ``searchsage serve``; the pieces are
:class:`DynamicBatcher`, :class:`CacheThrough`, :class:`EmbeddingService` and :func:`create_app`.
"""

from __future__ import annotations

from encoders.serving.app import create_app
from encoders.serving.batcher import DynamicBatcher, EncoderFailure, UnbatchedRunner
from encoders.serving.cache import CacheThrough
from encoders.serving.config import ServeConfig, ServeConfigError
from encoders.serving.service import EmbeddingService, EmbedResult

__all__ = [
    "CacheThrough",
    "DynamicBatcher",
    "EmbedResult",
    "EmbeddingService",
    "EncoderFailure",
    "ServeConfig",
    "ServeConfigError",
    "UnbatchedRunner",
    "create_app",
]
