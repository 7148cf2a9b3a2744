"""The serving corpus: which pins the retrieval index holds, chosen by time-decayed engagement.

A pin's score at time ``t`` is the sum over its positive engagements before ``t`` of
``2^(-(t - t_e) / half_life)`` (Pinterest homefeed's "time-decayed engagement sum"); ``half_life =
None`` counts engagements without decay (all-time popularity). The index holds the ``top_n`` pins by
score. A smaller, fresher index drops stale pins that crowd the top-k, at the cost of missing the
engagements on pins it left out — :mod:`encoders.homefeed.evaluate` measures both sides.
"""

from __future__ import annotations

import numpy as np

from encoders.homefeed.events import EventLog


def decayed_scores(log: EventLog, n_pins: int, at: float, half_life_days: float | None) -> np.ndarray:
    """``(n_pins,)`` float64 time-decayed engagement score of every pin at time ``at`` (days since epoch)."""
    if half_life_days is not None and half_life_days <= 0:
        raise ValueError(f"half-life must be > 0 days, got {half_life_days}")
    before = log.times < at
    w = np.ones(int(before.sum())) if half_life_days is None else \
        np.exp2(-(at - log.times[before]) / half_life_days)
    return np.bincount(log.pins[before], weights=w, minlength=n_pins).astype(np.float64)


def select_corpus(scores: np.ndarray, top_n: int) -> np.ndarray:
    """Pin rows ``(min(top_n, N),)`` int64 with the highest scores, ties to the lower row, in row order."""
    if top_n < 1:
        raise ValueError(f"corpus size must be >= 1, got {top_n}")
    order = np.lexsort((np.arange(len(scores)), -scores))
    return np.sort(order[:top_n]).astype(np.int64)
