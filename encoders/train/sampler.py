"""Training pairs and the batch sampler: eval queries excluded, per-pin cap, multitask blend.

* :func:`training_pairs` turns engagements (and optionally graded judgments) into
  :class:`TrainingPairs`, dropping every query for which :func:`encoders.data.split.is_eval_query`
  holds, so eval queries never train.
* :class:`PairSampler` builds one deterministic epoch at a time from ``(seed, epoch)``: each task's
  pairs are shuffled and capped at ``max_per_pin`` appearances per pin, tasks are blended by
  ``task_weights`` (default 50/50 organic/shopping; tasks absent from the data are dropped and the
  remaining weights renormalised), and the stream is cut into batches with no repeated
  (query, pin) pair inside a batch. Its state is ``(epoch, batch index)`` so a checkpoint resumes at
  exactly the next batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from encoders.data.split import is_eval_query, is_validation_query

DEFAULT_TASK_WEIGHTS: Mapping[str, float] = {"organic": 0.5, "shopping": 0.5}


@dataclass
class TrainingPairs:
    """Parallel arrays of N training pairs: ``queries`` (normalised text), ``pin_idx (N,)`` int64 rows
    of the pin matrix, ``tasks (N,)`` str, ``weights (N,)`` float32 loss weights."""

    queries: np.ndarray
    pin_idx: np.ndarray
    tasks: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.pin_idx)

    def positives_by_query(self) -> dict[str, set[int]]:
        """Every pin index engaged with each query (all tasks)."""
        out: dict[str, set[int]] = {}
        for q, p in zip(self.queries.tolist(), self.pin_idx.tolist(), strict=True):
            out.setdefault(q, set()).add(p)
        return out


def training_pairs(
    engagements: pa.Table,
    pin_index: Mapping[str, int],
    judgments: pa.Table | None = None,
    extra_positive_grade: float | None = None,
    extra_positive_weight: float = 0.5,
    hold_out_validation: bool = False,
) -> TrainingPairs:
    """Pairs of the TRAIN split: engagements of non-eval queries (weight 1); with
    ``hold_out_validation`` the validation queries (:func:`~encoders.data.split.is_validation_query`)
    are left out too.

    With ``judgments`` and ``extra_positive_grade`` g, judged pairs with ``grade >= g`` that are not
    already engagements are added with ``extra_positive_weight`` ("graded positives", task
    ``judged``—they are blended with the ``shopping`` task's weight share when that is the only task;
    see :class:`PairSampler`). Engagements whose ``pin_id`` is unknown raise ``ValueError``.
    """
    queries = engagements.column("query").to_pylist()
    pins = engagements.column("pin_id").to_pylist()
    tasks = engagements.column("task").to_pylist()
    q_out, p_out, t_out, w_out = [], [], [], []
    seen: set[tuple[str, str]] = set()

    def held_out(q: str) -> bool:
        return is_eval_query(q) or (hold_out_validation and is_validation_query(q))

    for row, (q, pid, t) in enumerate(zip(queries, pins, tasks, strict=True)):
        if pid not in pin_index:
            raise ValueError(f"engagements row {row}: pin_id {pid!r} is not in pins.parquet")
        seen.add((q, pid))
        if held_out(q):
            continue
        q_out.append(q), p_out.append(pin_index[pid]), t_out.append(t), w_out.append(1.0)
    if judgments is not None and extra_positive_grade is not None:
        base_task = max(set(t_out), key=t_out.count) if t_out else "judged"
        for q, pid, g in zip(
            judgments.column("query").to_pylist(),
            judgments.column("pin_id").to_pylist(),
            judgments.column("grade").to_pylist(), strict=True,
        ):
            if g >= extra_positive_grade and (q, pid) not in seen and pid in pin_index and not held_out(q):
                seen.add((q, pid))
                q_out.append(q), p_out.append(pin_index[pid]), t_out.append(base_task)
                w_out.append(extra_positive_weight)
    return TrainingPairs(
        queries=np.asarray(q_out, dtype=object),
        pin_idx=np.asarray(p_out, dtype=np.int64),
        tasks=np.asarray(t_out, dtype=object),
        weights=np.asarray(w_out, dtype=np.float32),
    )


def blend_weights(present: list[str], task_weights: Mapping[str, float] | None) -> dict[str, float]:
    """The normalised blend over the ``present`` tasks: ``task_weights`` (default
    :data:`DEFAULT_TASK_WEIGHTS`) restricted to them; an equal blend when none of them is weighted;
    tasks of weight 0 are left out."""
    weights = dict(DEFAULT_TASK_WEIGHTS if task_weights is None else task_weights)
    used = {t: float(weights.get(t, 0.0)) for t in sorted(present)}
    if sum(used.values()) <= 0:  # none of the configured tasks is present → equal blend of what is
        used = {t: 1.0 for t in used}
    total = sum(used.values())
    return {t: w / total for t, w in used.items() if w > 0}


@dataclass
class Batch:
    """One batch: ``queries`` (B strings), ``pin_idx (B,)`` int64, ``weights (B,)`` float32, ``tasks`` (B,)."""

    queries: list[str]
    pin_idx: np.ndarray
    weights: np.ndarray
    tasks: list[str]


class PairSampler:
    """Deterministic epochs of capped, task-blended batches over :class:`TrainingPairs`.

    ``max_per_pin``: at most this many appearances of one pin per epoch (``None`` = no cap).
    ``task_weights``: blend weights; an epoch holds ``round(w_t · total)`` pairs of task t, where
    ``total`` is the number of capped pairs of all present tasks; a task with too few pairs is cycled
    (reshuffled each pass). ``drop_last`` drops a final short batch.
    """

    def __init__(
        self,
        pairs: TrainingPairs,
        batch_size: int,
        seed: int = 0,
        max_per_pin: int | None = 20,
        task_weights: Mapping[str, float] | None = None,
        drop_last: bool = True,
    ):
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 for in-batch negatives, got {batch_size}")
        if len(pairs) == 0:
            raise ValueError("no training pairs (every query may be an eval query, or engagements are empty)")
        self.pairs, self.batch_size, self.seed = pairs, batch_size, seed
        self.max_per_pin, self.drop_last = max_per_pin, drop_last
        self.task_weights = blend_weights(sorted(set(pairs.tasks.tolist())), task_weights)
        self.epoch, self.batch_index = 0, 0
        self._batches: list[Batch] | None = None

    # --- epoch construction ---------------------------------------------------------------------
    def _capped(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        idx = rng.permutation(idx)
        if self.max_per_pin is None:
            return idx
        counts: dict[int, int] = {}
        keep = np.zeros(len(idx), dtype=bool)
        for k, p in enumerate(self.pairs.pin_idx[idx].tolist()):
            c = counts.get(p, 0)
            if c < self.max_per_pin:
                counts[p] = c + 1
                keep[k] = True
        return idx[keep]

    def epoch_order(self, epoch: int) -> np.ndarray:
        """Pair indices of one epoch (capped per task, blended, shuffled), deterministic in (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        pools = {t: self._capped(np.flatnonzero(self.pairs.tasks == t), rng) for t in self.task_weights}
        total = sum(len(v) for v in pools.values())
        chosen = []
        for t, w in self.task_weights.items():
            pool, want = pools[t], round(w * total)
            if len(pool) == 0 or want == 0:
                continue
            if want < len(pool):  # a uniform subset (the capped pool holds a capped pin's copies up front)
                pool = rng.permutation(pool)
            reps = [pool]
            while sum(len(r) for r in reps) < want:
                reps.append(rng.permutation(pool))
            chosen.append(np.concatenate(reps)[:want])
        order = rng.permutation(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)
        if self.max_per_pin is not None and len(self.task_weights) > 1:  # cap across tasks as well
            counts: dict[int, int] = {}
            keep = np.zeros(len(order), dtype=bool)
            for k, p in enumerate(self.pairs.pin_idx[order].tolist()):
                if counts.get(p, 0) < self.max_per_pin:
                    counts[p] = counts.get(p, 0) + 1
                    keep[k] = True
            order = order[keep]
        return order

    def _make_batches(self, epoch: int) -> list[Batch]:
        order = self.epoch_order(epoch).tolist()
        q, p = self.pairs.queries, self.pairs.pin_idx
        batches: list[list[int]] = []
        current: list[int] = []
        keys: set[tuple[str, int]] = set()
        pending: list[int] = []  # pairs deferred because the same (query, pin) is in the batch

        def add(i: int) -> bool:
            key = (q[i], int(p[i]))
            if key in keys:
                return False
            current.append(i)
            keys.add(key)
            return True

        for i in order:
            if not add(i):
                pending.append(i)
            while len(current) == self.batch_size:
                batches.append(current)
                current, keys = [], set()
                rest = []
                for j in pending:
                    if len(current) >= self.batch_size or not add(j):
                        rest.append(j)
                pending = rest
        if current and (not self.drop_last or not batches):
            batches.append(current)
        return [
            Batch(
                queries=[q[i] for i in b], pin_idx=p[b].astype(np.int64), weights=self.pairs.weights[b],
                tasks=[self.pairs.tasks[i] for i in b],
            )
            for b in batches
        ]

    def batches_per_epoch(self) -> int:
        return len(self._make_batches(0))

    # --- iteration + state ----------------------------------------------------------------------
    def __iter__(self) -> Iterator[Batch]:
        """Endless stream of batches, continuing from the current state (epoch, batch index)."""
        while True:
            if self._batches is None:
                self._batches = self._make_batches(self.epoch)
            while self.batch_index < len(self._batches):
                b = self._batches[self.batch_index]
                self.batch_index += 1
                yield b
            self.epoch, self.batch_index, self._batches = self.epoch + 1, 0, None

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch_index": self.batch_index, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"sampler state was saved with seed {state['seed']}, this sampler has seed {self.seed}")
        self.epoch, self.batch_index, self._batches = int(state["epoch"]), int(state["batch_index"]), None
