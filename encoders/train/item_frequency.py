"""Item sampling probabilities for the logQ correction of the sampled softmax.

The in-batch softmax draws its negatives from the other rows' positives, i.e. from the training
pairs' pin distribution ``q`` (popular pins are drawn often and pushed away often). The logQ
correction (Yi et al. 2019, "Sampling-bias-corrected neural modeling for large corpus item
recommendations", RecSys) subtracts ``log`` of each sampled column's expected count from its logit,
which turns the sampled sum into an importance-sampled estimate of the full softmax's denominator.

``q`` is estimated in one pass over the stream of positives the sampler yields:

* :class:`ExactCounts` -- a ``bincount`` over pin indices (a catalogue of row numbers, as here);
* :class:`CountMinSketch` -- ``depth`` rows of ``width`` counters with pairwise-independent hashes
  (Cormode & Muthukrishnan 2005) for catalogues too large for one counter per item or with ids that
  are not row numbers. Its estimate never undercounts, and overcounts by more than ``e/width × N``
  (``N`` = stream length) with probability at most ``exp(-depth)`` per item. OmniSearchSage
  (Agarwal et al. 2024; ``pinterest/atg-research``, ``omnisearchsage/modules/approx.py``) counts
  positives and random negatives with such a sketch.

:class:`LogQ` turns the counts into the per-column correction of one step (see its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

import numpy as np
import torch

_PRIME = (1 << 31) - 1  # Mersenne prime for the ((a·x + b) mod p) mod w hash family


class FrequencyCounts(Protocol):
    """Counts of items in a stream: ``count(ids)`` per id and the stream length ``total``."""

    total: int

    def update(self, ids: np.ndarray) -> None: ...

    def count(self, ids: np.ndarray) -> np.ndarray: ...


class ExactCounts:
    """Exact counts of non-negative integer ids below ``n_items``."""

    def __init__(self, n_items: int):
        if n_items <= 0:
            raise ValueError(f"n_items must be > 0, got {n_items}")
        self.counts = np.zeros(n_items, dtype=np.int64)
        self.total = 0

    def update(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self.counts)):
            raise ValueError(f"ids must lie in [0, {len(self.counts)}), got [{ids.min()}, {ids.max()}]")
        self.counts += np.bincount(ids, minlength=len(self.counts))
        self.total += len(ids)

    def count(self, ids: np.ndarray) -> np.ndarray:
        return self.counts[np.asarray(ids, dtype=np.int64)]


class CountMinSketch:
    """Count-min sketch over non-negative integer ids (``< 2**31``): ``depth × width`` int64 counters.

    ``count(x)`` = the minimum over the rows of the counter ``x`` hashes to: at least the true count,
    and at most ``true + e/width × total`` with probability ``>= 1 - exp(-depth)``.
    """

    def __init__(self, width: int, depth: int, seed: int = 0):
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
        rng = np.random.default_rng([seed, 19])
        self.width, self.depth = int(width), int(depth)
        self.a = rng.integers(1, _PRIME, depth, dtype=np.int64)
        self.b = rng.integers(0, _PRIME, depth, dtype=np.int64)
        self.table = np.zeros((depth, width), dtype=np.int64)
        self.total = 0

    def _cells(self, ids: np.ndarray) -> np.ndarray:
        """``(depth, n)`` column of each id in each row (a·x < 2**62: no int64 overflow)."""
        x = np.asarray(ids, dtype=np.int64)
        if len(x) and (x.min() < 0 or x.max() >= _PRIME):
            raise ValueError(f"ids must lie in [0, 2**31 - 1), got [{x.min()}, {x.max()}]")
        return ((self.a[:, None] * x[None, :] + self.b[:, None]) % _PRIME) % self.width

    def update(self, ids: np.ndarray) -> None:
        cells = self._cells(ids)
        for r in range(self.depth):
            np.add.at(self.table[r], cells[r], 1)
        self.total += len(cells[0]) if self.depth else 0

    def count(self, ids: np.ndarray) -> np.ndarray:
        cells = self._cells(ids)
        return self.table[np.arange(self.depth)[:, None], cells].min(axis=0)

    @staticmethod
    def error_bound(width: int, total: int) -> float:
        """The additive overcount ``e/width × total`` exceeded with probability <= exp(-depth)."""
        return math.e / width * total


def count_stream(counter: FrequencyCounts, stream: Iterable[np.ndarray]) -> FrequencyCounts:
    """Feed every array of ids of ``stream`` to ``counter`` (one pass) and return it."""
    for ids in stream:
        counter.update(np.asarray(ids, dtype=np.int64))
    return counter


class LogQ:
    """Per-column logQ correction of one step, from the positives' counts.

    A step's sampled columns come from three sources: the ``n_sampled`` rows whose positives follow
    the training pairs (probability ``q(j) = count(j) / total``), ``n_uniform`` uniform draws from
    the ``n_items`` catalogue (pseudo-query pins, ``--random-negatives K``) and, with
    ``--random-negatives -1``, every pin exactly once. The expected number of copies of pin ``j``
    among those columns is

        ``n(j) = n_sampled × q(j) + n_uniform / n_items + [whole catalogue]``

    and every column holding ``j`` gets ``log n(j)`` subtracted from its logit (the label cell of a
    row excepted: the positive is given, not sampled) -- ``Σ_c exp(s_c) / n(j_c)`` is then an
    unbiased estimate of ``Σ_j exp(s_j)`` over the catalogue. Consequences:

    * uniform random negatives alone: ``log(K / P)`` for every one (the same shift for all; it
      weighs the K drawn pins as P pins against the positive);
    * whole catalogue: ``n(j) = 1 + B × q(j)`` ≈ 1 -- the softmax is exact, logQ is moot (only the
      in-batch duplicates of popular pins are discounted a little);
    * mined hard negatives and the queue are not draws from a known proposal: no correction.

    A real row's pin counts at least once (``count(j) >= 1`` in the in-batch
    columns of real rows), so a pin the counting pass missed never gets ``log 0``.
    """

    def __init__(self, counts: FrequencyCounts, n_items: int):
        if counts.total <= 0:
            raise ValueError("logQ needs a non-empty stream of positives to count")
        self.counts, self.n_items = counts, int(n_items)

    def expected_counts(self, ids: np.ndarray, n_sampled: int, n_uniform: int, full: bool,
                        sampled_floor: bool = False) -> np.ndarray:
        """``n(j)`` of the class docstring for each id (``sampled_floor``: count each id at least once)."""
        c = self.counts.count(np.asarray(ids, dtype=np.int64)).astype(np.float64)
        if sampled_floor:
            c = np.maximum(c, 1.0)
        return n_sampled * c / self.counts.total + n_uniform / self.n_items + (1.0 if full else 0.0)

    def columns(self, pos_ids: torch.Tensor, real_rows: torch.Tensor | int, extra_ids: torch.Tensor | None = None,
                corrected_extra: torch.Tensor | None = None, n_random: int = 0, full: bool = False) -> torch.Tensor:
        """The correction ``(B + K,)`` float32 of the step's columns: ``log n(j)`` for the in-batch
        columns and for the extra columns flagged in ``corrected_extra (K,)`` bool; 0 for the other
        extra columns (hard negatives, queue). ``real_rows`` says which in-batch positives follow
        ``q`` (bool ``(B,)``, or an int: the first that many rows); the other rows' pins are uniform
        draws (pseudo-queries). ``n_random`` uniform random negatives were drawn; ``full``: the whole
        catalogue is among the extra columns. Columns gathered from several processes work the same:
        pass the concatenated ids and masks and the summed ``n_random``."""
        b = int(pos_ids.shape[0])
        real = np.arange(b) < real_rows if isinstance(real_rows, int) else real_rows.cpu().numpy().astype(bool)
        n_real = int(real.sum())
        n_uniform = (b - n_real) + n_random
        ids = pos_ids.cpu().numpy()  # (ids may live on the training device)
        batch = np.empty(b)
        batch[real] = np.log(self.expected_counts(ids[real], n_real, n_uniform, full, sampled_floor=True))
        batch[~real] = np.log(self.expected_counts(ids[~real], n_real, n_uniform, full))
        parts = [batch]
        if extra_ids is not None:
            extra = np.zeros(int(extra_ids.shape[0]))
            if corrected_extra is not None and bool(corrected_extra.any()):
                sel = corrected_extra.cpu().numpy()
                extra[sel] = np.log(self.expected_counts(extra_ids.cpu().numpy()[sel], n_real, n_uniform, full))
            parts.append(extra)
        return torch.from_numpy(np.concatenate(parts).astype(np.float32))
