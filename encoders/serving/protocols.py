"""The two interfaces the service depends on: an encoder and an embedding store.

The real implementations are :class:`encoders.runtime.BundleEncoder` and the Redis fast path in
:mod:`encoders.featurestore`; anything with the same shape plugs in (tests use the real ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Encoder(Protocol):
    """Turns texts into embeddings; called from a worker thread, never on the event loop."""

    @property
    def dim(self) -> int: ...

    @property
    def model_version(self) -> str: ...

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return an ``(len(texts), dim)`` float32 matrix, row ``i`` for ``texts[i]``."""
        ...


@runtime_checkable
class EmbeddingStore(Protocol):
    """Online-store access keyed by normalised query text (blocking I/O, run off the loop)."""

    def fetch(self, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(matrix (N, D) float32, found (N,) bool)``; rows of missing keys are zeros."""
        ...

    def write(self, keys: Sequence[str], matrix: np.ndarray, model_version: str) -> object:
        """Write ``matrix`` (N, D) float32 as the records stock Feast reads."""
        ...
