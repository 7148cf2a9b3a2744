"""The encoder shape every consumer of query/pin vectors depends on.

The real implementation is :class:`encoders.runtime.BundleEncoder`; :class:`~encoders.runtime.pin_feedback.PinFeedbackEncoder`
wraps one; the embedding service, the batch encoder and the Feast UDFs accept anything of this shape.
"""

from __future__ import annotations

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
