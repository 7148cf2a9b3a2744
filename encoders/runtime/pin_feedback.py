"""Pseudo-relevance feedback in the frozen pin space: move each query embedding towards its own top pins.

Rocchio's relevance feedback, with the query tower's own top-``k`` pins standing in for judged ones
and no text index involved::

    q̂  = q / |q|
    c   = mean of the top-k pins of q̂ (inner product against the pin index, each pin L2-normalised)
    q'  = (q̂ + weight · c / |c|) / |q̂ + weight · c / |c||

The refined query is still one ``D``-vector in the pin space, so it goes wherever a query embedding
goes: the pin ANN index, the feature store, rankers. It costs one extra top-``k`` search per query,
which the batch encoder pays once per query at materialisation time.

The defaults (``k`` 5, ``weight`` 0.1) were chosen on the Home Depot validation split, not on the eval
split the README reports (``bench/pin_feedback_homedepot.py``; docs/training.md).

At inference time :func:`load_pin_feedback` loads the pin index once and :class:`PinFeedbackEncoder`
wraps any query encoder with it: it has the encoder shape the batch encoder and the embedding
service use (``dim``, ``model_version``, ``encode``), so materialised (``searchsage encode
--pin-feedback``) and live (``searchsage serve --pin-feedback``) query embeddings are refined the
same way and carry the same ``model_version`` tag.

Numpy only (no torch): it belongs to the runtime, beneath training, evaluation and serving.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from encoders.runtime.vectors import exact_top_k, l2_normalize

if TYPE_CHECKING:
    from encoders.runtime.encoder import Encoder


@dataclass(frozen=True)
class PinFeedback:
    """``k``: top pins averaged per query (>= 1); ``weight``: their share against the query (>= 0;
    0 = no feedback, the query comes back L2-normalised)."""

    k: int = 5
    weight: float = 0.1

    def __post_init__(self) -> None:
        if int(self.k) != self.k or self.k < 1:
            raise ValueError(f"pin feedback k must be a positive integer, got {self.k!r}")
        if not np.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"pin feedback weight must be a finite number >= 0, got {self.weight!r}")

    def apply(self, queries: np.ndarray, pins: np.ndarray, chunk_size: int = 256) -> np.ndarray:
        """Refine ``queries (N, D)`` against the pin index ``pins (M, D)`` → ``(N, D)`` float32, L2-normalised.

        The top-``k`` search is exact (inner product with the pins as given, as in training and
        evaluation). Zero query rows stay zero.
        """
        x = _check_pins(pins)
        return self._refine(queries, x, l2_normalize(x), chunk_size)

    def _refine(self, queries: np.ndarray, pins: np.ndarray, unit_pins: np.ndarray, chunk_size: int) -> np.ndarray:
        q = l2_normalize(np.asarray(queries, dtype=np.float32))
        if self.weight == 0 or len(q) == 0:
            return q
        if q.ndim != 2 or q.shape[1] != pins.shape[1]:
            raise ValueError(f"pin index is (M, {pins.shape[1]}) but the queries are shaped {q.shape}")
        ids, _ = exact_top_k(q, pins, self.k, chunk_size)
        centroid = l2_normalize(unit_pins[ids].mean(axis=1))
        live = np.linalg.norm(q, axis=1, keepdims=True) > 0
        return np.where(live, l2_normalize(q + np.float32(self.weight) * centroid), q).astype(np.float32)


@dataclass(frozen=True, eq=False)
class PinFeedbackIndex:
    """A :class:`PinFeedback` bound to one pin index ``pins (M, D)`` float32, for refining many
    batches (the batch encoder's chunks) without re-normalising the pins each time."""

    feedback: PinFeedback
    pins: np.ndarray

    def __post_init__(self) -> None:
        x = _check_pins(self.pins)
        object.__setattr__(self, "pins", x)
        object.__setattr__(self, "_unit", l2_normalize(x))
        object.__setattr__(self, "_digest", hashlib.sha1(x.tobytes()).hexdigest()[:12])  # once: ~0.1 s per 80 MB

    @property
    def dim(self) -> int:
        return int(self.pins.shape[1])

    @property
    def version_tag(self) -> str:
        """``pinfb-k5-w0.1-<12 hex of the pin matrix's sha1>``: appended to a model version, so that
        embeddings refined with other settings or another pin index never pass for these."""
        return f"pinfb-k{self.feedback.k}-w{self.feedback.weight:g}-{self._digest}"  # type: ignore[attr-defined]

    def apply(self, queries: np.ndarray, chunk_size: int = 256) -> np.ndarray:
        """``queries (N, D)`` → refined ``(N, D)`` float32, L2-normalised (see :meth:`PinFeedback.apply`)."""
        return self.feedback._refine(queries, self.pins, self._unit, chunk_size)  # type: ignore[attr-defined]


def _check_pins(pins: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(pins, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"pin index must be a non-empty (M, D) matrix, got shape {x.shape}")
    return x


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
