"""Pure computation of the streaming log aggregation (:mod:`abtest.aggregate_stream` does the I/O).

Everything works on arrow arrays and numpy vectors, never on Python rows:

* :class:`abtest.string_codes.StringCodes` maps user ids and head/torso queries to integer codes;
* :func:`query_segments` — head/torso/tail of every query from its search count (same ranking and
  float arithmetic as the SQL engine);
* :func:`exposure_users` — one row per exposed user (arm, first exposure), multi-arm users dropped;
* :class:`EventCounter` — dense per-user counters filled by ``np.add.at`` on flat integer keys:
  ``(user, period, segment)`` cells for ``users.parquet`` and ``(user, day)`` cells for
  ``user_days.parquet``; :meth:`EventCounter.users_tables` / :meth:`EventCounter.user_days_tables`
  turn them into the output tables, a slice of users at a time.

Memory is the counters — ``5 × users × (2 · segments + days)`` integers — plus one record batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from abtest.string_codes import StringCodes

COUNT_COLUMNS: tuple[str, ...] = ("impressions", "clicks", "long_clicks", "searches", "related_searches")
OUTPUT_SEGMENTS: tuple[str, ...] = ("head", "torso", "tail")
DAY_US = 86_400_000_000


def ts_micros(arr: pa.Array) -> tuple[np.ndarray, np.ndarray | None]:
    """Timestamps as int64 µs since the epoch (UTC; naive = UTC) and a validity mask (``None``: no nulls)."""
    if arr.type.unit != "us":
        arr = pc.cast(arr, pa.timestamp("us", tz=arr.type.tz), safe=False)
    ints = arr.view(pa.int64()) if hasattr(arr, "view") else arr.cast(pa.int64())
    if arr.null_count:
        return np.asarray(ints.fill_null(0)), np.asarray(arr.is_valid())
    return np.asarray(ints), None


def bool_values(arr: pa.Array) -> np.ndarray:
    """A boolean/number column as a numpy bool vector; nulls are False."""
    return np.asarray(arr.fill_null(False) if arr.null_count else arr, dtype=bool)


@dataclass
class Segments:
    """Query segments: ``names`` (codes are positions), the non-``tail`` queries and their codes."""

    names: tuple[str, ...]
    queries: pa.Array
    codes: np.ndarray

    @property
    def tail(self) -> int:
        return self.names.index("tail")

    def lookup(self) -> tuple[StringCodes, np.ndarray]:
        """``(StringCodes over the queries, code of each)`` — unknown queries are ``tail``."""
        return StringCodes(self.queries), self.codes.astype(np.int8)

    def of(self, queries: pa.Array, lookup: tuple[StringCodes, np.ndarray]) -> np.ndarray:
        """int8 segment code of every query (``tail`` when not listed or null)."""
        codes, seg = lookup
        return codes.lookup(queries, seg, self.tail)


def query_segments(queries: pa.Array, counts: np.ndarray, null_count: int, head_share: float,
                   torso_share: float) -> Segments:
    """Head/torso/tail by search volume: queries ranked by count (desc), then query (asc, byte order);
    ``before`` = share of searches ranked strictly before; head when ``before < head_share``, torso
    when ``< torso_share``, else tail. A null query group (``null_count``) ranks last among equal counts."""
    names = ("head", "torso", "tail")
    keys = pa.table({"n": pa.array(np.asarray(counts, dtype=np.int64)), "query": queries})
    if null_count:
        keys = pa.concat_tables([keys, pa.table({"n": pa.array([null_count], pa.int64()),
                                                 "query": pa.nulls(1, queries.type)})])
    order = pc.sort_indices(keys, sort_keys=[("n", "descending"), ("query", "ascending")])  # nulls last
    n = np.asarray(keys["n"].take(order))
    total = float(n.sum())
    before = (np.cumsum(n) - n).astype(np.float64) / total if total else np.zeros(len(n))
    code = np.where(before < head_share, 0, np.where(before < torso_share, 1, 2)).astype(np.int8)
    q = keys["query"].take(order).combine_chunks()
    keep = np.flatnonzero((code != 2) & np.asarray(q.is_valid()))
    return Segments(names, q.take(pa.array(keep)), code[keep])


def custom_segments(table: pa.Table) -> Segments:
    """Segments from a ``query_segments.parquet`` table (``query, segment``); null segment → ``tail``."""
    seg = pc.fill_null(table["segment"].cast(pa.string()), "tail").combine_chunks()
    query = table["query"].cast(pa.string()).combine_chunks()
    names = tuple(sorted(set(seg.to_pylist()) | {"tail"}))
    code = np.asarray(pc.index_in(seg, value_set=pa.array(names)), dtype=np.int64).astype(np.int8)
    keep = np.flatnonzero((code != names.index("tail")) & np.asarray(query.is_valid()))
    return Segments(names, query.take(pa.array(keep)), code[keep])


@dataclass
class ExposureUsers:
    """Exposed single-arm users sorted by ``user_id``: code = position."""

    user_ids: pa.Array
    arm_names: tuple[str, ...]
    arm: np.ndarray  # (n,) int16 code into arm_names
    first_ts: np.ndarray  # (n,) int64 µs
    multi_arm_excluded: int

    @property
    def start(self) -> int | None:
        return int(self.first_ts.min()) if len(self.first_ts) else None

    def arm_counts(self) -> dict[str, int]:
        counts = np.bincount(self.arm, minlength=len(self.arm_names))
        return {a: int(c) for a, c in zip(self.arm_names, counts, strict=True) if c}


def exposure_users(user_id: pa.Array, arm: pa.Array, ts_us: np.ndarray) -> ExposureUsers:
    """Per user: ``min(arm)`` (byte order), number of distinct arms, first exposure; users with > 1 arm
    dropped. Group-by on dictionary codes with ``np.minimum.at`` (no string hashing per aggregate)."""
    users = pc.dictionary_encode(user_id.cast(pa.string()))
    arms = pc.dictionary_encode(arm.cast(pa.string()))
    names = arms.dictionary.to_pylist()
    rank = np.empty(len(names), dtype=np.int64)
    rank[sorted(range(len(names)), key=names.__getitem__)] = np.arange(len(names))
    u = np.asarray(users.indices, dtype=np.int64)
    a = rank[np.asarray(arms.indices, dtype=np.int64)] if len(names) else np.zeros(0, np.int64)
    n, k = len(users.dictionary), max(1, len(names))
    min_arm, first = np.full(n, k, dtype=np.int64), np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(min_arm, u, a)
    np.minimum.at(first, u, np.asarray(ts_us, dtype=np.int64))
    seen = np.zeros(n * k, dtype=bool)
    seen[u * k + a] = True
    n_arms = seen.reshape(n, k).sum(axis=1)
    keep = np.flatnonzero(n_arms == 1)
    ids = users.dictionary.take(pa.array(keep))
    order = np.asarray(pc.sort_indices(ids))
    sorted_names = sorted(names)
    used = np.flatnonzero(np.bincount(min_arm[keep], minlength=k))  # arm ranks of kept users → codes
    arm_names = tuple(sorted_names[r] for r in used)
    codes = np.searchsorted(used, min_arm[keep][order]).astype(np.int16)
    return ExposureUsers(ids.take(pa.array(order)), arm_names, codes, first[keep][order], int((n_arms > 1).sum()))


class CountersTooLarge(MemoryError):
    """The dense counters would exceed their memory budget (the caller falls back to SQL)."""


def counter_bytes(n_users: int, n_segments: int, n_days: int, dtype: type) -> int:
    """Bytes of :class:`EventCounter`'s counters."""
    return len(COUNT_COLUMNS) * n_users * (2 * n_segments + n_days) * np.dtype(dtype).itemsize


class EventCounter:
    """Dense counters of one experiment: ``cells[c]`` ``(users, 2 · segments)`` per (period, segment)
    (period 0 = experiment, 1 = pre-period) and ``days[c]`` ``(users, n_days)`` per experiment day,
    each flat with one trailing *trash* slot that collects the rows outside both periods.

    :meth:`add` takes one batch of events (user codes, segment codes, µs timestamps and per-counter
    flags), turns every row into a flat cell key and a day key and counts them with ``np.add.at``
    (no per-batch allocation of the counters, no Python per row).
    """

    def __init__(self, users: ExposureUsers, n_segments: int, pre_period_days: int, n_days: int = 1,
                 dtype: type = np.int64, max_bytes: int | None = None):
        self.users, self.k = users, n_segments
        self.n, self.n_days, self.dtype = len(users.first_ts), max(1, n_days), np.dtype(dtype)
        self.max_bytes = max_bytes
        self._check(self.n_days)
        self.start = users.start if users.start is not None else 0
        self.pre_lo = self.start - int(pre_period_days) * DAY_US
        self._pre_span = np.uint64(max(0, self.start - self.pre_lo))
        self._first = np.append(users.first_ts, np.iinfo(np.int64).max)  # code -1 → never in the experiment
        self._one = self.dtype.type(1)
        self.cells = np.zeros((len(COUNT_COLUMNS), self.n * 2 * self.k + 1), dtype=self.dtype)
        self.days = np.zeros((len(COUNT_COLUMNS), self.n * self.n_days + 1), dtype=self.dtype)

    def add(self, user: np.ndarray, segment: np.ndarray, ts: np.ndarray, valid: np.ndarray | None,
            counters: Sequence[tuple[int, np.ndarray | None]]) -> None:
        """Count one batch. ``user``: codes (-1 = not an experiment user); ``valid``: timestamp mask;
        ``counters``: ``(counter index, row flags or None = every row)``."""
        if self.n == 0 or len(user) == 0:
            return
        exp = ts >= np.take(self._first, user)
        pre = (ts - self.pre_lo).view(np.uint64) < self._pre_span  # pre_lo <= ts < start
        pre &= user >= 0
        if valid is not None:
            exp &= valid
            pre &= valid
        top = int(ts.max())
        if top >= self.start + self.n_days * DAY_US:
            last = int(np.where(exp, ts, self.start).max())
            if last >= self.start + self.n_days * DAY_US:
                self._grow_days((last - self.start) // DAY_US + 1)
        cell, dkey = self._keys(user, segment, ts, exp, pre)
        for c, flags in counters:
            np.add.at(self.cells[c], cell if flags is None else cell[flags], self._one)
            np.add.at(self.days[c], dkey if flags is None else dkey[flags], self._one)

    @property
    def key_dtype(self) -> np.dtype:
        """int32 keys (half the memory traffic) while every flat index fits, else int64."""
        return np.dtype(np.int32 if max(self.cells.shape[1], self.days.shape[1]) < 2**31 else np.int64)

    def _keys(self, user: np.ndarray, segment: np.ndarray, ts: np.ndarray, exp: np.ndarray,
              pre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat cell and day keys (trash slot for rows outside both periods), branch-free:
        ``key = trash + keep · (cell − trash)`` vectorises where ``np.where`` would branch per row
        (dropped rows may wrap around in int32: they are multiplied by 0)."""
        kt = self.key_dtype
        trash = self.cells.shape[1] - 1
        cell = user.astype(kt, copy=False) * kt.type(2 * self.k)
        cell += segment
        cell += kt.type(self.k - trash)
        cell -= exp.astype(kt) * kt.type(self.k)  # experiment rows in period 0, pre-period rows in period 1
        cell *= exp | pre
        cell += kt.type(trash)
        trash = self.days.shape[1] - 1
        day = ts - self.start
        day //= DAY_US  # |day| < 2**31 for any int64 µs timestamp
        dkey = day.astype(kt)
        dkey += user.astype(kt, copy=False) * kt.type(self.n_days)
        dkey -= kt.type(trash)
        dkey *= exp
        dkey += kt.type(trash)
        return cell, dkey

    def _check(self, n_days: int) -> None:
        if self.max_bytes is not None and counter_bytes(self.n, self.k, n_days, self.dtype) > self.max_bytes:
            raise CountersTooLarge(f"{self.n} users × {n_days} days of counters exceed {self.max_bytes} bytes")

    def _grow_days(self, n_days: int) -> None:
        self._check(n_days)
        new = max(n_days, 2 * self.n_days)
        if self.max_bytes is not None and counter_bytes(self.n, self.k, new, self.dtype) > self.max_bytes:
            new = n_days
        grown = np.zeros((len(COUNT_COLUMNS), self.n, new), dtype=self.dtype)
        grown[:, :, : self.n_days] = self._day_view()
        self.days = np.concatenate([grown.reshape(len(COUNT_COLUMNS), -1),
                                    np.zeros((len(COUNT_COLUMNS), 1), self.dtype)], axis=1)
        self.n_days = new

    def _day_view(self) -> np.ndarray:
        return self.days[:, :-1].reshape(len(COUNT_COLUMNS), self.n, self.n_days)

    @property
    def running_days(self) -> int:
        """Largest experiment day with an event + 1 (1 without any)."""
        active = np.flatnonzero(self._day_view().any(axis=(0, 1)))
        return int(active[-1]) + 1 if active.size else 1

    def first_day(self) -> np.ndarray:
        return ((self.users.first_ts - self.start) // DAY_US).astype(np.int32)

    def _ids(self, user: np.ndarray, lo: int, hi: int) -> pa.DictionaryArray:
        """``user_id`` of codes in ``[lo, hi)`` over that slice of the ids (a small dictionary the
        parquet writer stores as is)."""
        return _dict(user - lo, self.users.user_ids.slice(lo, hi - lo))

    def users_tables(self, experiment: str, segment_names: Sequence[str],
                     rows_per_table: int = 1 << 18) -> Iterator[pa.Table]:
        """``users.parquet`` in slices (by user): segment ``all`` for every user + a row per output
        segment (head/torso/tail) where the user had activity, in either period."""
        nc, k = len(COUNT_COLUMNS), self.k
        out_codes = [segment_names.index(s) for s in OUTPUT_SEGMENTS if s in segment_names]
        labels = ["all"] + [segment_names[c] for c in out_codes]
        label_arr, arm_names = pa.array(labels, pa.string()), pa.array(self.users.arm_names, pa.string())
        first_day = self.first_day()
        users_per = max(1, rows_per_table // len(labels))
        for lo in range(0, max(self.n, 1), users_per):
            hi = min(self.n, lo + users_per)
            cells = self.cells[:, lo * 2 * k: hi * 2 * k].reshape(nc, hi - lo, 2, k)
            per_seg = cells[..., out_codes]  # (counter, user, period, output segment)
            mask = np.ones((hi - lo, len(labels)), dtype=bool)
            mask[:, 1:] = per_seg.any(axis=(0, 2))
            flat = np.flatnonzero(mask.ravel())
            user, seg = lo + flat // len(labels), flat % len(labels)
            cols = {"experiment": _const(experiment, flat.size), "user_id": self._ids(user, lo, hi),
                    "arm": _dict(self.users.arm[user], arm_names), "segment": _dict(seg, label_arr),
                    "first_day": pa.array(first_day[user])}
            for period, prefix in ((0, ""), (1, "pre_")):
                for c, name in enumerate(COUNT_COLUMNS):
                    vals = np.concatenate([cells[c, :, period, :].sum(axis=1, dtype=np.int64)[:, None],
                                           per_seg[c, :, period, :].astype(np.int64)], axis=1)
                    cols[prefix + name] = pa.array(vals.ravel()[flat])
            yield pa.table(cols, schema=USERS_SCHEMA)

    def user_days_tables(self, experiment: str, rows_per_table: int = 1 << 20) -> Iterator[pa.Table]:
        """``user_days.parquet`` in slices: one row per (user, day ≥ 0) with activity, by user then day."""
        n_days = self.running_days
        days = self._day_view()[:, :, :n_days]
        users_per = max(1, rows_per_table // n_days)
        arm_names = pa.array(self.users.arm_names, pa.string())
        for lo in range(0, self.n, users_per):
            block = days[:, lo: lo + users_per, :]
            flat = np.flatnonzero(block.any(axis=0).ravel())
            if flat.size == 0:
                continue
            user, day = lo + flat // n_days, (flat % n_days).astype(np.int32)
            cols = {"experiment": _const(experiment, flat.size),
                    "user_id": self._ids(user, lo, min(self.n, lo + users_per)),
                    "arm": _dict(self.users.arm[user], arm_names), "day": pa.array(day)}
            for c, name in enumerate(COUNT_COLUMNS):
                cols[name] = pa.array(block[c].reshape(-1)[flat].astype(np.int64))
            yield pa.table(cols, schema=USER_DAYS_SCHEMA)


def _dict(codes: np.ndarray, dictionary: pa.Array) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.asarray(codes, dtype=np.int32)), dictionary)


def _const(value: str, n: int) -> pa.DictionaryArray:
    return _dict(np.zeros(n, dtype=np.int32), pa.array([value], pa.string()))


def _schema(keys: list[tuple[str, pa.DataType, bool]]) -> pa.Schema:
    return pa.schema([pa.field(n, t, nullable=nullable) for n, t, nullable in keys])


_DICT = pa.dictionary(pa.int32(), pa.string())
# the SQL engine's column types and nullability (strings dictionary-encoded in memory, written as strings)
USERS_SCHEMA = _schema([("experiment", _DICT, False), ("user_id", _DICT, False), ("arm", _DICT, False),
                        ("segment", _DICT, True), ("first_day", pa.int32(), True),
                        *((c, pa.int64(), True) for c in COUNT_COLUMNS),
                        *((f"pre_{c}", pa.int64(), True) for c in COUNT_COLUMNS)])
USER_DAYS_SCHEMA = _schema([("experiment", _DICT, False), ("user_id", _DICT, False), ("arm", _DICT, False),
                            ("day", pa.int32(), False), *((c, pa.int64(), True) for c in COUNT_COLUMNS)])
