"""``--stream``: training pairs read from ``engagements.parquet`` by row groups, never as one table.

**Pass 1** (:func:`scan_engagements`, once per run) reads the file record batch by record batch
(``pyarrow.dataset``) and keeps only: ``n[t, p]``, the training pairs of task t with pin p (a
``T × P`` array); the known positives as a sorted array of (64-bit query hash, pin) (12 bytes a
pair instead of a dict of sets); a uniform sample of up to :data:`SAMPLE_PAIRS` pairs (for the
pseudo-queries' length and context-word statistics); and the graded positives of the judgments
(a small table, held in memory as the in-memory path does).

**Each epoch** (:class:`StreamingSampler`) reads the row groups in a seeded random order and emits
each training pair ``⌊m⌋`` times, plus once more with probability ``m − ⌊m⌋``, where ``m = m[t, p]``
implements the per-pin cap and the task blend of :class:`~encoders.train.sampler.PairSampler` in
expectation (``cap`` = ``max_per_pin``, ``w_t`` the normalised ``task_weights``)::

    a[t, p] = min(1, cap / n[t, p])          per-task cap: E[kept] = min(n[t, p], cap), the in-memory capped pool
    c[t]    = Σ_p min(n[t, p], cap)           task t's capped pairs (exact, from the counts)
    r[t]    = round(w_t · Σ_t c[t]) / c[t]    blend: r > 1 repeats a small task, as the in-memory sampler cycles it
    e[p]    = Σ_t min(n[t, p], cap) · r[t]    pin p's expected appearances after blending
    b[p]    = min(1, cap / e[p])              cap across tasks (only with more than one task, as in memory)
    m[t, p] = a[t, p] · r[t] · b[p]

so pin p appears ``b[p]·e[p] ≤ cap`` times in expectation and task t makes ``w_t`` of the epoch
(before the cross-task cap); a per-pin counter also enforces the cap strictly (a copy beyond it is
dropped). The emitted pairs pass a shuffle buffer of ``stream_buffer`` pairs and are cut into
batches with no repeated (query, pin) pair, as in memory. An epoch's length is random (a sum of
Bernoulli draws); :meth:`StreamingSampler.batches_per_epoch` counts epoch 0's pairs (one more
read pass at set-up), which lays out the LR schedule. The state is ``(epoch, batch index)``: a resumed run replays the epoch's stream
up to that batch. Memory: the counts (``T × P``), the known-positive index, the sample, the buffer
and one record batch — not the pairs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from encoders.data.schema import validate_table
from encoders.data.split import is_eval_query, is_validation_query
from encoders.train.sampler import Batch, TrainingPairs, blend_weights

SAMPLE_PAIRS = 100_000  # uniform sample of training pairs kept for the pseudo-query statistics
READ_ROWS = 8_192  # rows per record batch read (Python lists of one batch are the transient memory)


def read_batches(fragment: ds.Fragment, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """A row group's record batches, read on this thread with one batch of read-ahead (the
    scanner's default thread pools and 16-batch read-ahead cost more memory than they save time)."""
    return fragment.to_batches(columns=columns, batch_size=READ_ROWS, batch_readahead=1, fragment_readahead=1,
                               use_threads=False)


def query_hash(q: str) -> int:
    """A stable 64-bit hash of a query (the same in every process, unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(q.encode("utf-8"), digest_size=8).digest(), "little")


class CompactKnown:
    """Known positives as sorted ``(query hash, pin)`` arrays; ``get(query, default)`` like a dict of sets."""

    def __init__(self, hashes: np.ndarray, pins: np.ndarray):
        order = np.lexsort((pins, hashes))
        h, p = hashes[order], pins[order]
        keep = np.ones(len(h), dtype=bool)
        keep[1:] = (h[1:] != h[:-1]) | (p[1:] != p[:-1])
        self.hashes, self.pins = h[keep], p[keep].astype(np.int32)

    def __len__(self) -> int:
        return len(np.unique(self.hashes))

    def get(self, query: str, default: Any = None) -> Any:
        h = np.uint64(query_hash(query))
        lo, hi = np.searchsorted(self.hashes, h, "left"), np.searchsorted(self.hashes, h, "right")
        return set(self.pins[lo:hi].tolist()) if hi > lo else default

    def __contains__(self, query: object) -> bool:
        return isinstance(query, str) and self.get(query) is not None

    def items(self) -> Iterator[tuple[str, set[int]]]:  # pragma: no cover - the texts are not kept
        raise TypeError("streamed known positives keep query hashes, not texts; merge by query with get()")

    def with_pairs(self, queries: list[str], pins: np.ndarray, only_known: bool = True) -> CompactKnown:
        """A copy with ``(queries[i], pins[i])`` added (``only_known``: for queries already present)."""
        h = np.array([query_hash(q) for q in queries], dtype=np.uint64)
        if only_known:
            keep = np.isin(h, self.hashes)
            h, pins = h[keep], np.asarray(pins)[keep]
        return CompactKnown(np.concatenate([self.hashes, h]), np.concatenate([self.pins, pins]).astype(np.int64))


def row_groups(path: Path) -> list[ds.Fragment]:
    """The row groups of a parquet file (or directory of files), each a readable fragment."""
    return [rg for f in ds.dataset(str(path), format="parquet").get_fragments() for rg in f.split_by_row_group()]


class _Reader:
    """Turns record batches of engagements into training rows: held-out queries dropped, pin ids
    mapped to rows of the pin matrix (an unknown pin id is a ValueError, as in memory)."""

    def __init__(self, pin_ids: list[str], hold_out_validation: bool):
        self.pin_ids = pa.array(pin_ids, pa.string())
        self.hold_out_validation = hold_out_validation
        self.row0 = 0  # rows read so far (for error messages)

    def held_out(self, q: str) -> bool:
        return is_eval_query(q) or (self.hold_out_validation and is_validation_query(q))

    def rows(self, rb: pa.RecordBatch) -> tuple[list[str], np.ndarray, list[str]]:
        """``(queries, pin rows int64, tasks)`` of the batch's training rows."""
        pin = pc.index_in(rb.column("pin_id"), value_set=self.pin_ids)
        if pin.null_count:
            bad = int(np.flatnonzero(pin.is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"engagements row {self.row0 + bad}: pin_id {rb.column('pin_id')[bad].as_py()!r} "
                             "is not in pins.parquet")
        self.row0 += rb.num_rows
        query = rb.column("query")
        uniq = pc.unique(query)
        held = [q for q in uniq.to_pylist() if self.held_out(q)]
        keep = pc.invert(pc.is_in(query, value_set=pa.array(held, pa.string()))).to_numpy(zero_copy_only=False)
        idx = np.flatnonzero(keep)
        take = pa.array(idx, pa.int64())
        return (query.take(take).to_pylist(), pin.to_numpy(zero_copy_only=False)[idx].astype(np.int64),
                rb.column("task").take(take).to_pylist())


class StreamedPairs:
    """What pass 1 keeps (module docstring): counts ``n[t, p]``, known positives, a sample of pairs
    and the graded positives; :attr:`sample` stands in for the pairs where statistics are needed."""

    def __init__(self, path: Path, fragments: list[ds.Fragment], reader: _Reader, tasks: list[str],
                 counts: np.ndarray, known: CompactKnown, sample: TrainingPairs, extra: TrainingPairs):
        self.path, self.fragments, self.reader = path, fragments, reader
        self.tasks, self.counts, self.known, self.sample, self.extra = tasks, counts, known, sample, extra

    def __len__(self) -> int:
        return int(self.counts.sum())

    def known_positives(self, judged: Mapping[str, Mapping[int, float]], exclude_grade: float | None) -> CompactKnown:
        """The training positives plus pins judged ``>= exclude_grade`` for queries with positives."""
        if exclude_grade is None:
            return self.known
        qs = [(q, p) for q, grades in judged.items() for p, g in grades.items() if g >= exclude_grade]
        return self.known.with_pairs([q for q, _ in qs], np.array([p for _, p in qs], dtype=np.int64))


def scan_engagements(path: Path, pin_ids: list[str], judgments: Any, extra_positive_grade: float | None,
                     extra_positive_weight: float, hold_out_validation: bool, seed: int,
                     sample_pairs: int = SAMPLE_PAIRS) -> StreamedPairs:
    """Pass 1 over ``path`` (see the module docstring), keeping a uniform sample of ``sample_pairs``
    pairs; the judgments table is small and read whole."""
    fragments = row_groups(path)
    reader = _Reader(pin_ids, hold_out_validation)
    per_task: dict[str, np.ndarray] = {}
    hashes, pins = [], []
    rng = np.random.default_rng([seed, 13])
    s_q = np.empty(sample_pairs, dtype=object)
    s_p = np.zeros(sample_pairs, dtype=np.int64)
    s_t = np.empty(sample_pairs, dtype=object)
    seen = 0
    for frag in fragments:
        for rb in read_batches(frag, ["query", "pin_id", "task", "action", "timestamp"]):
            validate_table(pa.Table.from_batches([rb]), "engagements", path)
            q, p, t = reader.rows(rb)
            for task in set(t):
                mask = np.fromiter((x == task for x in t), dtype=bool, count=len(t))
                per_task.setdefault(task, np.zeros(len(pin_ids), dtype=np.int64))
                per_task[task] += np.bincount(p[mask], minlength=len(pin_ids))
            uniq = {x: query_hash(x) for x in set(q)}
            hashes.append(np.fromiter((uniq[x] for x in q), dtype=np.uint64, count=len(q)))
            pins.append(p)
            # reservoir sample (Algorithm R, one batch at a time): row i goes to slot j ~ U[0, i]
            i = seen + np.arange(len(q))
            j = np.where(i < sample_pairs, i, rng.integers(0, i + 1))
            take = np.flatnonzero(j < sample_pairs)
            s_q[j[take]], s_p[j[take]], s_t[j[take]] = np.asarray(q, dtype=object)[take], p[take], \
                np.asarray(t, dtype=object)[take]
            seen += len(q)
    tasks = sorted(per_task)
    counts = np.stack([per_task[t] for t in tasks]) if tasks else np.zeros((0, len(pin_ids)), dtype=np.int64)
    known = CompactKnown(np.concatenate(hashes) if hashes else np.zeros(0, np.uint64),
                         np.concatenate(pins) if pins else np.zeros(0, np.int64))
    n = min(seen, sample_pairs)
    sample = TrainingPairs(s_q[:n], s_p[:n], s_t[:n], np.ones(n, dtype=np.float32))
    extra = _graded_positives(judgments, pin_ids, known, reader, tasks, counts, extra_positive_grade,
                              extra_positive_weight)
    for t, p in zip(extra.tasks.tolist(), extra.pin_idx.tolist(), strict=True):
        counts[tasks.index(t), p] += 1
    return StreamedPairs(path, fragments, reader, tasks, counts, known, sample, extra)


def _graded_positives(judgments: Any, pin_ids: list[str], known: CompactKnown, reader: _Reader, tasks: list[str],
                      counts: np.ndarray, grade: float | None, weight: float) -> TrainingPairs:
    """Judged pairs ``>= grade`` that are not engagements, as :func:`~encoders.train.sampler.training_pairs`
    adds them (task: the most common training task)."""
    q_out: list[str] = []
    p_out: list[int] = []
    if judgments is not None and grade is not None and tasks:
        index = {p: i for i, p in enumerate(pin_ids)}
        seen: set[tuple[str, int]] = set()
        for q, pid, g in zip(judgments.column("query").to_pylist(), judgments.column("pin_id").to_pylist(),
                             judgments.column("grade").to_pylist(), strict=True):
            p = index.get(pid)
            if g >= grade and p is not None and not reader.held_out(q) and (q, p) not in seen \
                    and p not in (known.get(q) or ()):
                seen.add((q, p))
                q_out.append(q), p_out.append(p)
    base = tasks[int(np.argmax(counts.sum(1)))] if tasks else "judged"
    return TrainingPairs(np.asarray(q_out, dtype=object), np.asarray(p_out, dtype=np.int64),
                         np.asarray([base] * len(q_out), dtype=object), np.full(len(q_out), weight, np.float32))


class StreamingSampler:
    """Epochs of capped, blended batches streamed from :class:`StreamedPairs` (module docstring);
    the interface and state of :class:`~encoders.train.sampler.PairSampler`."""

    def __init__(self, pairs: StreamedPairs, batch_size: int, seed: int = 0, max_per_pin: int | None = 20,
                 task_weights: Mapping[str, float] | None = None, buffer: int = 65_536):
        if batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 for in-batch negatives, got {batch_size}")
        if len(pairs) == 0:
            raise ValueError("no training pairs (every query may be an eval query, or engagements are empty)")
        self.pairs, self.batch_size, self.seed, self.max_per_pin = pairs, batch_size, seed, max_per_pin
        self.buffer = buffer
        self.task_weights = blend_weights(pairs.tasks, task_weights)
        self.multiplicity = self._multiplicity()
        self.epoch, self.batch_index = 0, 0
        self._per_epoch: int | None = None

    def _multiplicity(self) -> np.ndarray:
        n = self.pairs.counts.astype(np.float64)
        cap = np.inf if self.max_per_pin is None else float(self.max_per_pin)
        capped = np.minimum(n, cap)
        a = np.divide(capped, n, out=np.zeros_like(n), where=n > 0)
        c = capped.sum(axis=1)
        total = sum(c[i] for i, t in enumerate(self.pairs.tasks) if t in self.task_weights)
        r = np.array([round(self.task_weights.get(t, 0.0) * total) / c[i] if c[i] > 0 else 0.0
                      for i, t in enumerate(self.pairs.tasks)])
        b = np.ones(n.shape[1])
        if self.max_per_pin is not None and len(self.task_weights) > 1:
            e = (capped * r[:, None]).sum(axis=0)
            b = np.divide(cap, e, out=np.ones_like(e), where=e > cap)
        return a * r[:, None] * b[None, :]

    def expected_pairs(self) -> float:
        """Pairs an epoch emits in expectation (before the strict cap)."""
        return float((self.pairs.counts * self.multiplicity).sum())

    def batches_per_epoch(self) -> int:
        """Batches of epoch 0, from a counting pass over its stream (the strict cap makes the
        expectation a slight over-estimate); it lays out the LR schedule."""
        if self._per_epoch is None:
            self._per_epoch = max(1, sum(len(p) for p in self.epoch_pins(0)) // self.batch_size)
        return self._per_epoch

    def _emit(self, epoch: int) -> Iterator[tuple[list[str], np.ndarray, np.ndarray, np.ndarray]]:
        """The epoch's pairs in read order, with their copies: ``(queries, pins, task ids, weights)`` chunks."""
        rng = np.random.default_rng([self.seed, epoch, 11])
        frags = self.pairs.fragments
        order = rng.permutation(len(frags))
        extra = self.pairs.extra
        extra_at = rng.integers(0, len(frags), len(extra)) if len(frags) else np.zeros(len(extra), np.int64)
        task_id = {t: i for i, t in enumerate(self.pairs.tasks)}
        used = np.zeros(self.pairs.counts.shape[1], dtype=np.int64)
        for g in order.tolist():
            chunks = [(x.queries.tolist(), x.pin_idx, x.tasks.tolist(), x.weights)
                      for x in [_subset(extra, extra_at == g)] if len(x)]
            for rb in read_batches(frags[g], ["query", "pin_id", "task"]):
                q, p, t = self.pairs.reader.rows(rb)
                chunks.append((q, p, t, np.ones(len(q), dtype=np.float32)))
            for q, p, t, w in chunks:
                tid = np.fromiter((task_id[x] for x in t), dtype=np.int64, count=len(t))
                m = self.multiplicity[tid, p]
                copies = np.floor(m).astype(np.int64) + (rng.random(len(m)) < m - np.floor(m))
                rows = np.repeat(np.arange(len(m)), copies)
                if self.max_per_pin is not None and len(rows):
                    rows = rows[_under_cap(p[rows], used, self.max_per_pin)]
                yield [q[i] for i in rows.tolist()], p[rows], tid[rows], np.asarray(w, dtype=np.float32)[rows]

    def epoch_pins(self, epoch: int) -> Iterator[np.ndarray]:
        """The pin rows of one epoch, chunk by chunk (e.g. to count pin frequencies in one pass)."""
        for _, p, _, _ in self._emit(epoch):
            yield p

    def _shuffled(self, epoch: int) -> Iterator[tuple[str, int, int, float]]:
        rng = np.random.default_rng([self.seed, epoch, 12])
        buf: list[tuple[str, int, int, float]] = []
        for q, p, t, w in self._emit(epoch):
            slots = rng.integers(0, self.buffer, len(q)).tolist()
            for item, j in zip(zip(q, p.tolist(), t.tolist(), w.tolist(), strict=True), slots, strict=True):
                if len(buf) < self.buffer:
                    buf.append(item)
                else:
                    yield buf[j]
                    buf[j] = item
        for j in rng.permutation(len(buf)).tolist():
            yield buf[j]

    def _batches(self, epoch: int) -> Iterator[Batch]:
        current: list[tuple[str, int, int, float]] = []
        keys: set[tuple[str, int]] = set()
        pending: list[tuple[str, int, int, float]] = []  # deferred: the same (query, pin) is in the batch
        produced = 0

        def add(item: tuple[str, int, int, float]) -> bool:
            if (item[0], item[1]) in keys:
                return False
            current.append(item)
            keys.add((item[0], item[1]))
            return True

        for item in self._shuffled(epoch):
            if not add(item):
                pending.append(item)
            while len(current) == self.batch_size:
                yield self._batch(current)
                produced += 1
                current, keys = [], set()
                pending = [j for j in pending if len(current) >= self.batch_size or not add(j)]
        if current and not produced:
            yield self._batch(current)

    def _batch(self, items: list[tuple[str, int, int, float]]) -> Batch:
        return Batch(queries=[x[0] for x in items], pin_idx=np.array([x[1] for x in items], dtype=np.int64),
                     weights=np.array([x[3] for x in items], dtype=np.float32),
                     tasks=[self.pairs.tasks[x[2]] for x in items])

    def __iter__(self) -> Iterator[Batch]:
        """Endless stream of batches from the current state (a mid-epoch state replays up to it)."""
        while True:
            for i, b in enumerate(self._batches(self.epoch)):
                if i < self.batch_index:
                    continue
                self.batch_index += 1
                yield b
            self.epoch, self.batch_index = self.epoch + 1, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "batch_index": self.batch_index, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, int]) -> None:
        if int(state.get("seed", self.seed)) != self.seed:
            raise ValueError(f"sampler state was saved with seed {state['seed']}, this sampler has seed {self.seed}")
        self.epoch, self.batch_index = int(state["epoch"]), int(state["batch_index"])


def _subset(pairs: TrainingPairs, mask: np.ndarray) -> TrainingPairs:
    return TrainingPairs(pairs.queries[mask], pairs.pin_idx[mask], pairs.tasks[mask], pairs.weights[mask])


def _under_cap(pins: np.ndarray, used: np.ndarray, cap: int) -> np.ndarray:
    """Which of ``pins`` (in order) keep the count of their pin ``<= cap``, counting on from
    ``used`` (updated in place)."""
    order = np.argsort(pins, kind="stable")
    sorted_p = pins[order]
    start = np.r_[0, np.flatnonzero(sorted_p[1:] != sorted_p[:-1]) + 1]
    run = np.repeat(start, np.diff(np.r_[start, len(sorted_p)]))
    occurrence = np.empty(len(pins), dtype=np.int64)
    occurrence[order] = np.arange(len(pins)) - run + used[sorted_p]
    keep = occurrence < cap
    np.add.at(used, pins[keep], 1)
    return keep


def stream_training_data(config: Any, path: Path, pin_ids: list[str], judgments: Any,
                         judged: Mapping[str, Mapping[int, float]]) -> tuple[StreamedPairs, StreamingSampler,
                                                                            CompactKnown | None]:
    """``--stream``: pass 1, the sampler and the known positives (None without ``mask_known_positives``)
    of a :class:`~encoders.train.config.TrainConfig`."""
    pairs = scan_engagements(path, pin_ids, judgments, config.extra_positive_grade, config.extra_positive_weight,
                             config.hold_out_validation, config.seed)
    sampler = StreamingSampler(pairs, config.batch_size, config.seed, config.max_per_pin, config.task_weights,
                               config.stream_buffer)
    known = pairs.known_positives(judged, config.hard_negative_exclude_grade) if config.mask_known_positives else None
    return pairs, sampler, known
