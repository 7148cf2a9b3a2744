"""Pin-space feedback at inference time: load the pin index once, and wrap any query encoder with it.

:class:`PinFeedbackEncoder` has the encoder shape the batch encoder and the embedding service use
(``dim``, ``model_version``, ``encode``), so materialised (``searchsage encode --pin-feedback``) and
live (``searchsage serve --pin-feedback``) query embeddings are refined the same way and carry the
same ``model_version`` tag.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from encoders.model.pin_feedback import PinFeedback, PinFeedbackIndex

if TYPE_CHECKING:
    from encoders.serving.protocols import Encoder


def load_pin_feedback(pins_parquet: str | Path, k: int = PinFeedback.k, weight: float = PinFeedback.weight
                      ) -> PinFeedbackIndex:
    """A :class:`PinFeedbackIndex` over the ``embedding`` column of a dataset's ``pins.parquet``.

    Raises ValueError naming the file (missing, not parquet, no ``embedding`` column) or the setting.
    """
    from encoders.data.schema import pin_embedding_matrix, read_table

    feedback = PinFeedback(k=k, weight=weight)
    try:
        return PinFeedbackIndex(feedback, pin_embedding_matrix(read_table(pins_parquet, "pins")))
    except ValueError as exc:
        raise ValueError(f"{pins_parquet}: {exc}") from None


class PinFeedbackEncoder:
    """``encode(texts) → (N, D)``: the inner encoder's vectors refined by ``index``; ``model_version`` is
    ``<inner version>+<index.version_tag>``."""

    def __init__(self, inner: Encoder, index: PinFeedbackIndex):
        if int(inner.dim) != index.dim:
            raise ValueError(f"the feedback pin index is {index.dim}-d but the bundle encodes {inner.dim}-d")
        self.inner = inner
        self.index = index

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    @property
    def model_version(self) -> str:
        return f"{self.inner.model_version}+{self.index.version_tag}"

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.index.apply(self.inner.encode(texts))
