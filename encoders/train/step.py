"""One training step: the batch's extra rows and columns, the loss, the update (:func:`train_step`).

:class:`ExtraNegatives` draws the shared negative columns (hard + random + queue),
:class:`PseudoQueryAugmenter` appends the pseudo-query rows, :func:`row_known_positives` says what
each row masks, and :class:`StepInputs` holds what every step reads but never changes (the frozen
pin matrix, the tokenizer, the known positives, the logQ counts and the teacher labels);
:func:`build_step_extras` builds the last two from the options.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from encoders.model.tower import QueryTower, embed_in_length_buckets
from encoders.train.config import TrainConfig
from encoders.train.device import Precision
from encoders.train.distill import TeacherLabels, distill_loss, load_teacher_labels, merge_known
from encoders.train.distributed import RankShard
from encoders.train.item_frequency import CountMinSketch, ExactCounts, LogQ, count_stream
from encoders.train.loss import LossOutput, Temperature, in_batch_softmax_loss, near_duplicate_mask
from encoders.train.negatives import HardNegatives
from encoders.train.pseudo_queries import PseudoQueries, learn_context_words
from encoders.train.query_variants import QueryVariantConfig, QueryVariants
from encoders.train.sampler import Batch, TrainingPairs


class ExtraNegatives:
    """Draws the extra negative columns of one step: hard + random + queue (ids into the pin matrix)."""

    def __init__(self, config: TrainConfig, n_pins: int, hard: HardNegatives | None, seed: int):
        self.config, self.n_pins, self.hard = config, n_pins, hard
        self.rng = np.random.default_rng([seed, 1])
        self.queue = np.zeros(0, dtype=np.int64)
        self.full = config.random_negatives < 0
        self.last_sizes: dict[str, int] = {}  # columns per source of the last draw, in column order

    def draw(self, queries: list[str], pos: np.ndarray) -> torch.Tensor | None:
        """Ids of the sampled extra negatives (hard + random + queue); the whole catalogue, when
        ``random_negatives == -1``, is added by the caller as one more block (no copy)."""
        parts = []
        self.last_sizes = {}
        if self.hard is not None and self.config.hard_negatives > 0:
            parts.append(self.hard.sample(queries, self.config.hard_negatives, self.rng))
            self.last_sizes["hard"] = len(parts[-1])
        if self.config.random_negatives > 0:
            parts.append(self.rng.integers(0, self.n_pins, self.config.random_negatives))
            self.last_sizes["random"] = len(parts[-1])
        if self.config.queue_size > 0 and len(self.queue):
            parts.append(self.queue)
            self.last_sizes["queue"] = len(parts[-1])
        if self.config.queue_size > 0:
            self.queue = np.concatenate([pos, self.queue])[: self.config.queue_size]
        return torch.from_numpy(np.concatenate(parts).astype(np.int64)) if parts else None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "queue": self.queue.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.queue = np.asarray(state["queue"], dtype=np.int64)


class PseudoQueryAugmenter:
    """Appends ``config.pseudo_queries`` pseudo-query rows (weight ``pseudo_query_weight``) to a batch."""

    def __init__(self, config: TrainConfig, pin_texts: list[str], pairs: TrainingPairs, seed: int):
        self.n, self.weight = config.pseudo_queries, config.pseudo_query_weight
        self.mask_matches = config.mask_pseudo_query_matches
        self.rng = np.random.default_rng([seed, 2])
        self.source = None
        if self.n > 0:
            queries = pairs.queries.tolist()
            variants = None
            if config.pseudo_query_variants:
                context = learn_context_words(queries, pairs.pin_idx.tolist(), pin_texts)
                variants = QueryVariants(QueryVariantConfig.like_real_queries(), context)
            self.source = PseudoQueries(pin_texts, [len(q.split()) for q in queries], variants=variants)

    def extend(self, batch: Batch) -> tuple[Batch, list[np.ndarray] | None]:
        """The batch with the pseudo-query rows appended, and (with ``mask_pseudo_query_matches``)
        per appended row the pins that match its cut as well as its own pin does, else None."""
        if self.source is None:
            return batch, None
        matches = None
        if self.mask_matches:
            queries, pins, matches = self.source.draw_with_matches(self.n, self.rng)
        else:
            queries, pins = self.source.draw(self.n, self.rng)
        return Batch(
            queries=batch.queries + queries, pin_idx=np.concatenate([batch.pin_idx, pins]),
            weights=np.concatenate([batch.weights, np.full(len(pins), self.weight, dtype=np.float32)]),
            tasks=batch.tasks + ["pseudo"] * len(pins),
        ), matches

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def row_known_positives(
    known: dict[str, set[int]] | None, queries: list[str], pseudo_matches: Sequence[Collection[int]] | None
) -> list[Collection[int]] | None:
    """Per row of a batch of ``queries``, the pins masked as known positives: those of ``known`` for
    each query text, and for the last ``len(pseudo_matches)`` rows (pseudo-queries) their lexical
    matches as well; None when there is nothing to mask."""
    if known is None and pseudo_matches is None:
        return None
    rows: list[Collection[int]] = [known.get(q, set()) if known is not None else set() for q in queries]
    if pseudo_matches:
        first = len(queries) - len(pseudo_matches)
        # a pseudo-query rarely has known positives of its own: keep its matches as they come then
        rows[first:] = [r.union(m) if r else m for r, m in zip(rows[first:], pseudo_matches, strict=True)]
    return rows


@dataclass
class StepInputs:
    """What every step reads and none changes: the frozen pins (float32, and the copy the negative
    columns are scored in: bfloat16 with ``precision="bf16"``), every pin id, the tokenizer, the
    known positives of each query (None = no masking), the logQ counts (None = no correction) and
    the teacher labels (None = no distillation; their false negatives, with
    ``teacher_false_negative_grade``, join the known positives)."""

    config: TrainConfig
    tokenizer: Any
    pins: torch.Tensor
    known: dict[str, set[int]] | None
    log_q: LogQ | None = None
    teacher: TeacherLabels | None = None
    precision: Precision | None = None  # autocast + update; None: ``config.precision`` on the pins' device
    shard: RankShard | None = None  # data parallel (torchrun): this rank's rows; None: one process

    def __post_init__(self) -> None:
        if self.precision is None:
            self.precision = Precision(self.config.precision, self.pins.device)
        if self.teacher is not None and self.config.teacher_false_negative_grade is not None:
            self.known = merge_known(self.known, self.teacher.false_negatives(self.config.teacher_false_negative_grade))
        self.bf16 = self.config.precision == "bf16"
        self.score_dtype = torch.bfloat16 if self.bf16 else None
        self.pins_scored = self.pins if self.score_dtype is None else self.pins.to(self.score_dtype)
        self.all_ids = torch.arange(len(self.pins))

    def embed(self, tower: nn.Module, queries: list[str]) -> torch.Tensor:
        """``(N, D)`` float32 embeddings of a step's queries under the precision's autocast; data
        parallel, this rank encodes its share of the rows and gathers the others'
        (:meth:`~encoders.train.distributed.RankShard.embed`)."""
        assert self.precision is not None
        if self.shard is not None:
            return self.shard.embed(tower, self.tokenizer, queries, self.config.max_length,
                                    self.config.length_buckets, self.precision)
        with self.precision.autocast():
            q = embed_in_length_buckets(tower, self.tokenizer, queries, self.config.max_length,
                                        self.config.length_buckets)
        return q.float()


def train_step(
    inputs: StepInputs, batch: Batch, tower: QueryTower, temperature: Temperature, optimizer: torch.optim.Optimizer,
    negatives: ExtraNegatives, augmenter: PseudoQueryAugmenter,
) -> LossOutput:
    """One update: append the pseudo-queries, embed the queries, draw the negative columns, take the
    masked in-batch softmax loss, back-propagate, clip the gradient and step the optimizer (the LR
    schedule is the caller's)."""
    config = inputs.config
    n_real = len(batch.pin_idx)
    batch, pseudo_matches = augmenter.extend(batch)
    q = inputs.embed(tower, batch.queries)
    pos = torch.from_numpy(batch.pin_idx)
    sampled = negatives.draw(batch.queries, batch.pin_idx)
    blocks = [] if sampled is None else [inputs.pins_scored[sampled]]
    id_parts = [] if sampled is None else [sampled]
    if negatives.full:
        blocks.append(inputs.pins_scored)
        id_parts.append(inputs.all_ids)
    p_pos = inputs.pins[pos]
    extra_ids = torch.cat(id_parts) if id_parts else None
    also = None
    if config.mask_similar_pins is not None:
        also = near_duplicate_mask(p_pos, blocks, config.mask_similar_pins)
    tau = temperature()
    out = in_batch_softmax_loss(
        q, p_pos, tau, pos, extra=blocks or None, extra_ids=extra_ids,
        known_positives=row_known_positives(inputs.known, batch.queries, pseudo_matches),
        weights=torch.from_numpy(batch.weights).to(q.device), also_mask=also, score_dtype=inputs.score_dtype,
        column_log_q=None if inputs.log_q is None else step_log_q(inputs.log_q, pos, n_real, extra_ids, negatives),
    )
    if inputs.teacher is not None and config.distill_weight > 0:
        targets = inputs.teacher.targets(batch.queries[:n_real], config.distill_temperature)
        if targets is not None:
            out.distill = distill_loss(q, inputs.pins, tau, targets)
            out.loss = out.loss + config.distill_weight * out.distill
    optimizer.zero_grad(set_to_none=True)
    inputs.precision.update(out.loss, tower, optimizer, config.max_grad_norm, inputs.shard)  # backward, clip, step
    return out


def step_log_q(log_q: LogQ, pos: torch.Tensor, n_real: int, extra_ids: torch.Tensor | None,
               negatives: ExtraNegatives) -> torch.Tensor:
    """The ``(B + K,)`` logQ correction of a step's columns: the in-batch columns (the first ``n_real``
    rows are real pairs, the rest pseudo-query pins drawn uniformly), the uniform random negatives and
    the whole catalogue corrected; mined hard negatives and the queue not (see
    :class:`~encoders.train.item_frequency.LogQ`)."""
    corrected = None
    if extra_ids is not None:
        flags = [np.full(n, kind == "random") for kind, n in negatives.last_sizes.items()]
        if negatives.full:
            flags.append(np.ones(negatives.n_pins, dtype=bool))
        corrected = torch.from_numpy(np.concatenate(flags).astype(bool))
    n_random = negatives.last_sizes.get("random", 0)
    return log_q.columns(pos, n_real, extra_ids, corrected, n_random=n_random, full=negatives.full)


def build_step_extras(config: TrainConfig, pin_index: dict[str, int], positives: Iterable[np.ndarray],
                      ) -> tuple[LogQ | None, TeacherLabels | None]:
    """The logQ counts (``logq_correction``; one pass over ``positives``, the pin rows the sampler
    yields in an epoch) and the teacher labels (``teacher_labels``), each None when off."""
    log_q = None
    n_pins = len(pin_index)
    if config.logq_correction != "none":
        counter: ExactCounts | CountMinSketch = (
            ExactCounts(n_pins) if config.logq_correction == "exact"
            else CountMinSketch(config.logq_sketch_width, config.logq_sketch_depth, seed=config.seed))
        log_q = LogQ(count_stream(counter, positives), n_pins)
    teacher = None
    if config.teacher_labels is not None:
        teacher = load_teacher_labels(config.teacher_labels, pin_index, config.hold_out_validation)
    return log_q, teacher
