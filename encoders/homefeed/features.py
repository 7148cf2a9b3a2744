"""The user tower's inputs as numpy arrays, built from an :class:`~encoders.homefeed.events.EventLog` (torch-free).

A *request* is (user, reference time, condition): the tower sees the user's last ``history`` positive
events strictly before the reference time. Training requests are the pre-split events themselves
(the reference time is the event's, the target its pin); serving requests use the split time (or
"now"). The same function builds both, and the ONNX scorer reuses it, so training and serving
cannot assemble features differently.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from encoders.homefeed.events import EventLog, InterestBags

#: Tower inputs, in the order the torch tower and the ONNX graph take them.
INPUT_NAMES: tuple[str, ...] = ("hist_vectors", "hist_mask", "hist_age", "hist_action", "user_row",
                                "interest_rows", "interest_weights", "condition_row")
OUTPUT_NAME = "user_vector"


@dataclass
class FeatureBatch:
    """One batch of tower inputs, ``hist_pins (B, L)`` int64 pin rows standing for ``hist_vectors``
    (gathered from the pin matrix by :meth:`inputs`); other fields as in :mod:`encoders.homefeed.tower`."""

    hist_pins: np.ndarray
    hist_mask: np.ndarray
    hist_age: np.ndarray
    hist_action: np.ndarray
    user_row: np.ndarray
    interest_rows: np.ndarray
    interest_weights: np.ndarray
    condition_row: np.ndarray

    def __len__(self) -> int:
        return int(self.user_row.shape[0])

    def inputs(self, pin_matrix: np.ndarray) -> dict[str, np.ndarray]:
        """The tower inputs by name (:data:`INPUT_NAMES`), ``hist_vectors (B, L, D)`` gathered from
        ``pin_matrix (N, D)`` float32 (padding rows are zero)."""
        vectors = np.asarray(pin_matrix, dtype=np.float32)[self.hist_pins]  # (B, L, D), a new array
        vectors *= self.hist_mask[..., None]
        out = {"hist_vectors": vectors}
        for f in fields(self):
            if f.name != "hist_pins":
                out[f.name] = getattr(self, f.name)
        return {k: out[k] for k in INPUT_NAMES}


def history_window(log: EventLog, users: np.ndarray, n_before: np.ndarray, ref_time: np.ndarray, history: int
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The last ``history`` events before each request, oldest first, left-padded.

    ``users (B,)`` int64 user indices, ``n_before (B,)`` how many of the user's events precede the
    request (its history is events ``[0, n_before)`` of the user), ``ref_time (B,)`` float64 days.
    Returns ``pins (B, L)`` int64, ``mask (B, L)`` float32, ``age (B, L)`` float32 days, ``action (B, L)`` int64.
    """
    start = log.offsets[users]
    end = start + n_before
    pos = end[:, None] - history + np.arange(history)[None, :]  # (B, L)
    valid = pos >= start[:, None]
    pos = np.where(valid, pos, 0)
    if len(log.pins) == 0:
        pos = np.zeros_like(pos)
        valid = np.zeros_like(valid)
        return pos, valid.astype(np.float32), np.zeros(pos.shape, np.float32), np.zeros_like(pos)
    pins = np.where(valid, log.pins[pos], 0)
    age = np.where(valid, ref_time[:, None] - log.times[pos], 0.0).astype(np.float32)
    action = np.where(valid, log.actions[pos], 0)
    return pins, valid.astype(np.float32), np.maximum(age, 0.0), action


def build_batch(log: EventLog, users: np.ndarray, n_before: np.ndarray, ref_time: np.ndarray, history: int,
                user_rows: np.ndarray, bags: InterestBags, condition_row: np.ndarray | None = None) -> FeatureBatch:
    """A :class:`FeatureBatch` for requests ``users (B,)`` at ``ref_time (B,)`` with ``n_before (B,)``
    history events each; ``user_rows (U,)`` the ID row of every user of ``log``; ``bags`` their
    declared interests; ``condition_row (B,)`` (default: no condition)."""
    users = np.asarray(users, dtype=np.int64)
    pins, mask, age, action = history_window(log, users, np.asarray(n_before, dtype=np.int64),
                                             np.asarray(ref_time, dtype=np.float64), history)
    cond = np.zeros(len(users), dtype=np.int64) if condition_row is None else np.asarray(condition_row, np.int64)
    return FeatureBatch(pins, mask, age, action, user_rows[users].astype(np.int64), bags.rows[users],
                        bags.weights[users], cond)
