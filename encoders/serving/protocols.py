"""The online-store interface the service depends on (the encoder's is :class:`encoders.runtime.encoder.Encoder`).

The real implementation is the Redis fast path in :mod:`encoders.redis_records`
(:class:`~encoders.redis_records.embeddings.EmbeddingStore`); anything with the same shape plugs in
(tests use the real ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class QueryVectorStore(Protocol):
    """Online-store access keyed by normalised query text (blocking I/O, run off the loop)."""

    def fetch(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(matrix (N, D) float32, found (N,) bool)``; rows of missing keys are zeros."""
        ...

    def write(self, keys: Sequence[str], matrix: np.ndarray, model_version: str) -> object:
        """Write ``matrix`` (N, D) float32 as the records stock Feast reads."""
        ...
