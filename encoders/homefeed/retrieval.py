"""Recall@k of future engagements against a pin index, per user, with the user's seen pins excluded (numpy).

:class:`EvalTargets` holds the post-split engagements to retrieve: ``(user, pin, action)`` triples of
positive events after the split time T on pins the user had *not* engaged before T (re-engagement
is what a "seen" filter removes from a real feed, and a mean of recent pins would get it for free).
A user's retrieval ranks the index by inner product with the user's vector (or, for popularity, by
one global score per pin), skips the pins the user engaged before T, and keeps the top ``max(ks)``.

Pair-level Recall@k = hits / pairs, as for queries (:mod:`encoders.eval.retrieval`); per user the
numerator and denominator are kept so a paired bootstrap over users can compare two systems.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from encoders.homefeed.events import EventLog
from encoders.homefeed.schema import ACTIONS, POSITIVE_ACTIONS

KS: tuple[int, ...] = (10, 50, 100)


@dataclass
class EvalTargets:
    """Eval users ``users (Q,)`` (indices into the log) with history before T, their history sizes
    ``n_before (Q,)``, and target pairs ``pair_user (P,)`` (0..Q-1), ``pair_pin (P,)``, ``pair_action (P,)``
    (an action code, or -1 for the "overall" pairs: one per distinct (user, pin))."""

    split: float
    users: np.ndarray
    n_before: np.ndarray
    pair_user: np.ndarray
    pair_pin: np.ndarray
    pair_action: np.ndarray

    @classmethod
    def build(cls, log: EventLog, split: float, max_users: int | None = None, seed: int = 0) -> EvalTargets:
        n_before = log.count_before(split)
        user_of = log.user_of_event()
        after = log.times >= split
        seen = set(zip(user_of[~after].tolist(), log.pins[~after].tolist(), strict=True))
        triples = sorted({(u, p, a) for u, p, a in zip(user_of[after].tolist(), log.pins[after].tolist(),
                                                        log.actions[after].tolist(), strict=True)
                          if (u, p) not in seen and n_before[u] > 0})
        users = np.array(sorted({u for u, _, _ in triples}), dtype=np.int64)
        if max_users is not None and len(users) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(users, size=max_users, replace=False))
        pos = {int(u): i for i, u in enumerate(users)}
        triples = [t for t in triples if t[0] in pos]
        overall = sorted({(u, p) for u, p, _ in triples})
        pu = [pos[u] for u, _, _ in triples] + [pos[u] for u, _ in overall]
        pp = [p for _, p, _ in triples] + [p for _, p in overall]
        pa = [a for _, _, a in triples] + [-1] * len(overall)
        return cls(split, users, n_before[users], np.array(pu, np.int64), np.array(pp, np.int64),
                   np.array(pa, np.int64))

    def slices(self) -> dict[str, np.ndarray]:
        """Pair masks by name: ``overall`` and one per positive action with pairs."""
        out = {"overall": self.pair_action == -1}
        for a in POSITIVE_ACTIONS:
            m = self.pair_action == ACTIONS.index(a)
            if m.any():
                out[a] = m
        return out


def retrieve(log: EventLog, targets: EvalTargets, index_rows: np.ndarray, k: int,
             user_vectors: np.ndarray | None = None, pin_matrix: np.ndarray | None = None,
             global_scores: np.ndarray | None = None, chunk_size: int = 512, progress: bool = False) -> np.ndarray:
    """Top-``k`` pin rows ``(Q, k)`` int64 (-1 where the index runs out) for each eval user.

    Either ``user_vectors (Q, D)`` with ``pin_matrix (N, D)`` (inner product) or ``global_scores (N,)``
    (the same ranking for everyone). ``index_rows`` are the pin rows the index holds; each user's
    pre-split pins are skipped.
    """
    if (user_vectors is None) == (global_scores is None):
        raise ValueError("give exactly one of user_vectors (with pin_matrix) and global_scores")
    n_pins = len(global_scores) if global_scores is not None else len(pin_matrix)  # type: ignore[arg-type]
    where = np.full(n_pins, -1, dtype=np.int64)
    where[index_rows] = np.arange(len(index_rows))
    index = None if pin_matrix is None else np.ascontiguousarray(pin_matrix[index_rows], dtype=np.float32)
    q = len(targets.users)
    out = np.full((q, k), -1, dtype=np.int64)
    kk = min(k, len(index_rows))
    for s in tqdm(range(0, q, chunk_size), desc="retrieve", unit="chunk", disable=not progress):
        users = targets.users[s : s + chunk_size]
        if index is not None:
            sc = user_vectors[s : s + chunk_size] @ index.T  # (c, Nc)
        else:
            sc = np.broadcast_to(global_scores[index_rows], (len(users), len(index_rows))).astype(np.float64)
        sc = np.array(sc, dtype=np.float64)
        starts = log.offsets[users]
        counts = targets.n_before[s : s + chunk_size]
        rows = np.repeat(np.arange(len(users)), counts)
        ev = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
        cols = where[log.pins[ev]]
        keep = cols >= 0
        sc[rows[keep], cols[keep]] = -np.inf
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk] if kk < sc.shape[1] else \
            np.broadcast_to(np.arange(sc.shape[1]), sc.shape).copy()
        ps = np.take_along_axis(sc, part, axis=1)
        order = np.lexsort((part, -ps), axis=1)
        best = np.take_along_axis(part, order, axis=1)
        best_rows = index_rows[best]
        best_rows[~np.isfinite(np.take_along_axis(ps, order, axis=1))] = -1
        out[s : s + len(users), :kk] = best_rows
    return out


def pair_ranks(targets: EvalTargets, top: np.ndarray) -> np.ndarray:
    """``(P,)`` int64: each target pair's 0-based rank in its user's list ``top (Q, K)``; K when absent."""
    q, k = top.shape
    n = int(max(top.max(initial=0), targets.pair_pin.max(initial=0))) + 2
    keys = np.arange(q)[:, None] * n + (top + 1)  # -1 (empty) → 0, never a target
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    want = targets.pair_user * n + targets.pair_pin + 1
    at = np.searchsorted(flat[order], want)
    at = np.minimum(at, len(flat) - 1)
    found = flat[order][at] == want
    return np.where(found, order[at] % k, k).astype(np.int64)


@dataclass
class RecallResult:
    """Recall@k by slice (``overall``, per action) and per-user hits for the bootstrap:
    ``recall[slice][k]``, ``hits[slice][k] (Q,)``, ``pairs[slice] (Q,)``."""

    recall: dict[str, dict[int, float]]
    hits: dict[str, dict[int, np.ndarray]]
    pairs: dict[str, np.ndarray]


def recall_at_k(targets: EvalTargets, top: np.ndarray, ks: tuple[int, ...] = KS) -> RecallResult:
    """Pair-level Recall@k of ``top (Q, max(ks))`` per slice, with per-user numerators and denominators."""
    ranks = pair_ranks(targets, top)
    q = len(targets.users)
    recall: dict[str, dict[int, float]] = {}
    hits: dict[str, dict[int, np.ndarray]] = {}
    pairs: dict[str, np.ndarray] = {}
    for name, m in targets.slices().items():
        pairs[name] = np.bincount(targets.pair_user[m], minlength=q).astype(np.float64)
        hits[name] = {k: np.bincount(targets.pair_user[m], weights=(ranks[m] < k).astype(np.float64), minlength=q)
                      for k in ks}
        total = pairs[name].sum()
        recall[name] = {k: float(hits[name][k].sum() / total) if total else 0.0 for k in ks}
    return RecallResult(recall, hits, pairs)
