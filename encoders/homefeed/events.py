"""Events as numpy arrays grouped by user, the split time, and the ID vocabularies (torch-free).

:class:`EventLog` holds the *positive* events (``closeup``/``click``/``save``; ``hide`` rows are
dropped) sorted by user then time: user ``u``'s events are rows ``offsets[u]:offsets[u + 1]``.
Times are float64 days since the Unix epoch. Pins are rows of the dataset's pin matrix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from encoders.homefeed.schema import ACTIONS, POSITIVE_ACTIONS

SECONDS_PER_DAY = 86_400.0


def parse_time(text: str, flag: str = "time") -> float:
    """An ISO timestamp (naive = UTC) → days since the Unix epoch; ValueError naming ``flag``."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{flag} must be an ISO timestamp such as 2024-03-17T00:00:00Z, got {text!r}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.timestamp() / SECONDS_PER_DAY


def format_time(days: float) -> str:
    """Days since the Unix epoch → ISO timestamp (UTC, seconds)."""
    return datetime.fromtimestamp(days * SECONDS_PER_DAY, tz=timezone.utc).isoformat(timespec="seconds")


@dataclass
class EventLog:
    """Positive events grouped by user: ``user_ids (U,)``, ``offsets (U + 1,)`` int64, and per event
    ``pins (E,)`` int64 pin rows, ``times (E,)`` float64 days, ``actions (E,)`` int64 index into
    :data:`~encoders.homefeed.schema.ACTIONS`."""

    user_ids: list[str]
    offsets: np.ndarray
    pins: np.ndarray
    times: np.ndarray
    actions: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    def user_of_event(self) -> np.ndarray:
        """``(E,)`` int64: the user index of each event."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.offsets))

    def count_before(self, t: float | np.ndarray) -> np.ndarray:
        """``(U,)`` int64: each user's number of events strictly before ``t`` (a scalar or ``(U,)``)."""
        before = self.times < (np.asarray(t)[self.user_of_event()] if np.ndim(t) else t)
        sums = np.concatenate([[0], np.cumsum(before, dtype=np.int64)])
        return sums[self.offsets[1:]] - sums[self.offsets[:-1]]

    @classmethod
    def from_table(cls, events: pa.Table, pin_ids: Sequence[str]) -> EventLog:
        """From a validated ``events`` table; ``pin_ids`` orders the pin matrix rows. Pins unknown to
        ``pin_ids`` raise ValueError (validate against pins.parquet first for a row-level message)."""
        keep = pc.is_in(events.column("action"), value_set=pa.array(POSITIVE_ACTIONS))
        ev = events.filter(keep)
        index = {p: i for i, p in enumerate(pin_ids)}
        pins_raw = ev.column("pin_id").to_pylist()
        try:
            pins = np.fromiter((index[p] for p in pins_raw), dtype=np.int64, count=len(pins_raw))
        except KeyError as exc:
            raise ValueError(f"events reference pin_id {exc.args[0]!r}, which is not in the pin matrix") from None
        codes = {a: i for i, a in enumerate(ACTIONS)}
        actions = np.fromiter((codes[a] for a in ev.column("action").to_pylist()), dtype=np.int64, count=ev.num_rows)
        micros = ev.column("timestamp").cast(pa.int64()).to_numpy()
        times = micros.astype(np.float64) / (SECONDS_PER_DAY * 1e6)
        users, user_idx = np.unique(np.asarray(ev.column("user_id").to_numpy(zero_copy_only=False), dtype=object),
                                    return_inverse=True)
        order = np.lexsort((times, user_idx))
        offsets = np.concatenate([[0], np.cumsum(np.bincount(user_idx, minlength=len(users)))]).astype(np.int64)
        return cls([str(u) for u in users], offsets, pins[order], times[order], actions[order])


def split_time(log: EventLog, eval_days: float, override: str | None = None) -> float:
    """The split time T (days since epoch): ``override`` (ISO) or ``eval_days`` before the last event."""
    if override is not None:
        return parse_time(override, "--split-time")
    if not len(log.times):
        raise ValueError("no positive events: cannot choose a split time")
    return float(log.times.max()) - eval_days


class IdVocab:
    """String ids → table rows; row 0 is the unknown/none row.

    ``indexed``: one row per known id (``ids``), in order, starting at 1. ``hashed`` (``buckets`` > 0):
    row ``1 + blake2b(id) mod buckets`` — no vocabulary to ship, unseen ids share rows with seen ones.
    """

    def __init__(self, ids: Sequence[str] = (), buckets: int = 0):
        self.buckets = int(buckets)
        self.ids = [] if self.buckets else list(ids)
        self._index = {x: i + 1 for i, x in enumerate(self.ids)}

    @property
    def size(self) -> int:
        """Rows of the embedding table this vocabulary indexes (the unknown row included)."""
        return 1 + (self.buckets or len(self.ids))

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """``(N,)`` int64 rows of ``ids`` (0 for unknown ids of an indexed vocabulary)."""
        if self.buckets:
            return np.fromiter((1 + int.from_bytes(hashlib.blake2b(x.encode(), digest_size=8).digest(), "little")
                                % self.buckets for x in ids), dtype=np.int64, count=len(ids))
        return np.fromiter((self._index.get(x, 0) for x in ids), dtype=np.int64, count=len(ids))

    def to_dict(self) -> dict:
        return {"buckets": self.buckets, "ids": self.ids}

    @classmethod
    def from_dict(cls, d: dict) -> IdVocab:
        return cls(d.get("ids", ()), d.get("buckets", 0))


@dataclass
class InterestBags:
    """Each user's declared interests as padded rows: ``rows (U, M)`` int64 (0 = padding) and
    ``weights (U, M)`` float32 (``1 / count`` on real entries, so a weighted sum is the mean)."""

    rows: np.ndarray
    weights: np.ndarray

    @classmethod
    def build(cls, user_ids: Sequence[str], table: pa.Table | None, vocab: IdVocab, max_per_user: int = 8
              ) -> InterestBags:
        """From a validated ``user_interests`` table (``None`` → every bag empty)."""
        n = len(user_ids)
        rows = np.zeros((n, max_per_user), dtype=np.int64)
        weights = np.zeros((n, max_per_user), dtype=np.float32)
        if table is not None and table.num_rows:
            pos = {u: i for i, u in enumerate(user_ids)}
            fill = np.zeros(n, dtype=np.int64)
            users = table.column("user_id").to_pylist()
            ids = vocab.rows(table.column("interest_id").to_pylist())
            for u, r in zip(users, ids, strict=True):
                i = pos.get(u)
                if i is None or r == 0 or fill[i] >= max_per_user:
                    continue
                rows[i, fill[i]] = r
                fill[i] += 1
            has = fill > 0
            weights[has] = (rows[has] > 0) / fill[has, None].astype(np.float32)
        return cls(rows, weights)
