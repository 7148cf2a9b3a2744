"""Daily and cumulative sufficient statistics from per-user-day rows, in numpy (pure computation).

The numpy twin of the SQL in :func:`abtest.timeseries.series_moments`: rows ``(user, arm, day,
counts)`` are scattered into dense ``(users, days, columns)`` blocks, the cumulative series is a
``cumsum`` over days, and each (arm, day) gets ``Σv`` and ``Σ v_a v_b`` by one matrix product over
its users (users inactive on a day contribute zeros, as in SQL). Integer counts make every sum
exact, so the numbers equal the SQL ones. Returns ``None`` — "use SQL" — for tables the SQL reads
differently: a null, a negative day or count, two rows for one (user, day), a user in two arms.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations_with_replacement

import numpy as np

from abtest.moments import Moments

SeriesKey = tuple[str, str, int]


def _variables(block: np.ndarray, variables: Sequence[str], col_index: dict[str, int]) -> np.ndarray:
    """``(days, users, variables)`` float64 from ``(days, users, columns)`` counts: a count column or
    its ``(col > 0)`` indicator (``any_col``)."""
    out = np.empty((*block.shape[:2], len(variables)), dtype=np.float64)
    for i, v in enumerate(variables):
        col = block[:, :, col_index[v[4:] if v.startswith("any_") else v]]
        out[:, :, i] = col > 0 if v.startswith("any_") else col
    return out


def dense_series_moments(user: np.ndarray, arm: np.ndarray, arm_names: Sequence[str], day: np.ndarray,
                         counts: dict[str, np.ndarray], variables: Sequence[str], n_days: int,
                         pop: dict[tuple[str, int], int], block_bytes: int = 4 * 2**20,
                         ) -> dict[SeriesKey, Moments] | None:
    """``{(series, arm, day): Moments}`` for ``daily`` and ``cumulative``, with the keys the SQL gives
    (daily: (arm, day) pairs with rows; cumulative: each arm's days from its first row on).

    ``user`` ``(rows,)`` integer codes ``0..U-1``; ``arm`` ``(rows,)`` codes into ``arm_names``; ``day``
    ``(rows,)`` in ``[0, n_days)``; ``counts`` ``{column: (rows,) integers}``; ``pop`` ``{(arm, day):
    users exposed}`` gives each key's ``n``.
    """
    columns = list(counts)
    names = sorted(set(variables))
    pairs = list(combinations_with_replacement(names, 2))
    n_users = int(user.max()) + 1 if user.size else 0
    if user.size and (day.min() < 0 or day.max() >= n_days or any((c < 0).any() for c in counts.values())):
        return None
    arm_of = np.full(n_users, -1, dtype=np.int64)
    arm_of[user] = arm
    if (arm_of[user] != arm).any():
        return None  # a user in two arms
    if user.size and np.bincount(user * n_days + day, minlength=n_users * n_days).max() > 1:
        return None  # two rows for one (user, day)
    col_index = {c: i for i, c in enumerate(columns)}
    k = len(names)
    acc = {(s, a): np.zeros((n_days, k + k * k)) for s in ("daily", "cumulative") for a in range(len(arm_names))}
    # users renumbered arm by arm, so every arm is one contiguous slice of a block
    by_arm = np.argsort(arm_of, kind="stable")
    pos = np.empty(n_users, dtype=np.int64)
    pos[by_arm] = np.arange(n_users)
    arm_at = arm_of[by_arm]
    # a user's running totals fit int32 when each column's grand total does (half the traffic of int64)
    dense_type = np.int32 if all(int(c.sum(dtype=np.int64)) < 2**31 for c in counts.values()) else np.int64
    step = max(1, block_bytes // max(1, n_days * (len(columns) + k) * 8))
    p = pos[user]
    block_of = p // step
    order = np.argsort(block_of.astype(np.int32 if n_users // step < 2**31 else np.int64), kind="stable")
    bounds = np.searchsorted(block_of[order], np.arange(0, n_users // step + 2))
    for b, lo in enumerate(range(0, n_users, step)):
        rows = order[bounds[b]: bounds[b + 1]]
        nb = min(step, n_users - lo)
        dense = np.zeros((n_days, nb, len(columns)), dtype=dense_type)  # day-major
        flat = np.take(day, rows) * (nb * len(columns)) + (np.take(p, rows) - lo) * len(columns)
        for j, c in enumerate(columns):
            dense.reshape(-1)[flat + j] = np.take(counts[c], rows)
        edges = np.searchsorted(arm_at[lo: lo + nb], np.arange(len(arm_names) + 1))
        for series in ("daily", "cumulative"):
            if series == "cumulative":
                np.cumsum(dense, axis=0, out=dense)
            for a in range(len(arm_names)):
                if edges[a + 1] > edges[a]:
                    v = _variables(dense[:, edges[a]: edges[a + 1]], names, col_index)
                    acc[(series, a)] += np.concatenate([v.sum(axis=1), (v.transpose(0, 2, 1) @ v).reshape(n_days, -1)],
                                                       axis=1)
    iu = {p: (names.index(p[0]), names.index(p[1])) for p in pairs}
    rows_per = np.bincount(arm * n_days + day, minlength=len(arm_names) * n_days).reshape(len(arm_names), n_days)
    out: dict[SeriesKey, Moments] = {}
    for (series, a), m in acc.items():
        name, active = arm_names[a], rows_per[a] > 0
        listed = active if series == "daily" else np.cumsum(active) > 0
        for d in np.flatnonzero(listed).tolist():
            sums = m[d, :k]
            cross = m[d, k:].reshape(k, k)
            out[(series, name, d)] = Moments(pop.get((name, d), 0), dict(zip(names, sums.tolist(), strict=True)),
                                             {p: float(cross[i, j]) for p, (i, j) in iu.items()})
    return out
