"""One training step: the batch's extra rows and columns, the loss, the update (:func:`train_step`).

:class:`ExtraNegatives` draws the shared negative columns (hard + random + queue),
:class:`PseudoQueryAugmenter` appends the pseudo-query rows, :func:`row_known_positives` says what
each row masks, and :class:`StepInputs` holds what every step reads but never changes (the frozen
pin matrix, the tokenizer, the known positives).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from encoders.model.tower import QueryTower, embed_in_length_buckets
from encoders.train.config import TrainConfig
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

    def draw(self, queries: list[str], pos: np.ndarray) -> torch.Tensor | None:
        """Ids of the sampled extra negatives (hard + random + queue); the whole catalogue, when
        ``random_negatives == -1``, is added by the caller as one more block (no copy)."""
        parts = []
        if self.hard is not None and self.config.hard_negatives > 0:
            parts.append(self.hard.sample(queries, self.config.hard_negatives, self.rng))
        if self.config.random_negatives > 0:
            parts.append(self.rng.integers(0, self.n_pins, self.config.random_negatives))
        if self.config.queue_size > 0 and len(self.queue):
            parts.append(self.queue)
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
    columns are scored in: bfloat16 with ``precision="bf16"``), every pin id, the tokenizer and the
    known positives of each query (None = no masking)."""

    config: TrainConfig
    tokenizer: Any
    pins: torch.Tensor
    known: dict[str, set[int]] | None

    def __post_init__(self) -> None:
        self.bf16 = self.config.precision == "bf16"
        self.score_dtype = torch.bfloat16 if self.bf16 else None
        self.pins_scored = self.pins if self.score_dtype is None else self.pins.to(self.score_dtype)
        self.all_ids = torch.arange(len(self.pins))


def train_step(
    inputs: StepInputs, batch: Batch, tower: QueryTower, temperature: Temperature, optimizer: torch.optim.Optimizer,
    negatives: ExtraNegatives, augmenter: PseudoQueryAugmenter,
) -> LossOutput:
    """One update: append the pseudo-queries, embed the queries, draw the negative columns, take the
    masked in-batch softmax loss, back-propagate, clip the gradient and step the optimizer (the LR
    schedule is the caller's)."""
    config = inputs.config
    batch, pseudo_matches = augmenter.extend(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=inputs.bf16):
        q = embed_in_length_buckets(tower, inputs.tokenizer, batch.queries, config.max_length, config.length_buckets)
    q = q.float()
    pos = torch.from_numpy(batch.pin_idx)
    sampled = negatives.draw(batch.queries, batch.pin_idx)
    blocks = [] if sampled is None else [inputs.pins_scored[sampled]]
    id_parts = [] if sampled is None else [sampled]
    if negatives.full:
        blocks.append(inputs.pins_scored)
        id_parts.append(inputs.all_ids)
    p_pos = inputs.pins[pos]
    also = None
    if config.mask_similar_pins is not None:
        also = near_duplicate_mask(p_pos, blocks, config.mask_similar_pins)
    out = in_batch_softmax_loss(
        q, p_pos, temperature(), pos,
        extra=blocks or None, extra_ids=torch.cat(id_parts) if id_parts else None,
        known_positives=row_known_positives(inputs.known, batch.queries, pseudo_matches),
        weights=torch.from_numpy(batch.weights), also_mask=also, score_dtype=inputs.score_dtype,
    )
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    nn.utils.clip_grad_norm_([p for p in tower.parameters() if p.requires_grad], config.max_grad_norm)
    optimizer.step()
    return out
