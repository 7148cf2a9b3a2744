"""Training the user tower: next-engagement prediction before the split time, softmax into the frozen pin space.

Every positive event before the split time T with at least one earlier event of its user is an
example: the tower sees the user's events before it (:func:`encoders.homefeed.features.build_batch`)
and must score that event's pin above the batch's other target pins and ``random_negatives``
uniform pins (:func:`encoders.train.loss.in_batch_softmax_loss`, with the user's other pre-T pins
masked as known positives and a :class:`~encoders.train.loss.Temperature`). A share
``condition_rate`` of examples is conditioned on its pin's interest. Dense parameters step with
AdamW, the ID tables with SparseAdam (:class:`HomefeedTrainState` is what a checkpoint holds); the LR warms up and decays linearly
(:func:`encoders.train.state.lr_factor`) over the planned steps or the time budget, whichever is spent
first. Writes the run directory of :mod:`encoders.homefeed.run`.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.homefeed.config import HomefeedTrainConfig
from encoders.homefeed.dataset import HomefeedData, load_homefeed
from encoders.homefeed.events import IdVocab, InterestBags, format_time, split_time
from encoders.homefeed.features import build_batch
from encoders.homefeed.run import CHECKPOINT, TOWER_WEIGHTS, TRAIN_LOG, TRAIN_SUMMARY, write_run_meta
from encoders.homefeed.tower import UserTower, UserTowerConfig
from encoders.train.loss import Temperature, in_batch_softmax_loss
from encoders.train.state import lr_factor


@dataclass
class Examples:
    """Training examples as event rows ``events (N,)`` of the log, with each one's user, history size
    (events of the user before it) and the number of pre-split events of every user."""

    events: np.ndarray
    users: np.ndarray
    n_before: np.ndarray
    user_n_train: np.ndarray

    @classmethod
    def build(cls, data: HomefeedData, split: float) -> Examples:
        log = data.log
        user_of = log.user_of_event()
        position = np.arange(len(log.pins)) - log.offsets[user_of]
        keep = np.flatnonzero((log.times < split) & (position >= 1))
        return cls(keep, user_of[keep], position[keep], log.count_before(split))


class ExampleSampler:
    """Shuffled passes over the examples (a new permutation per epoch); resumable via ``state_dict``."""

    def __init__(self, n: int, seed: int):
        self.n, self.rng = n, np.random.default_rng(seed)
        self.epoch, self.pos = 0, 0
        self.perm = self.rng.permutation(n)

    def next(self, size: int) -> np.ndarray:
        if self.pos + size > self.n:
            self.epoch, self.pos = self.epoch + 1, 0
            self.perm = self.rng.permutation(self.n)
        out = self.perm[self.pos : self.pos + size]
        self.pos += size
        return out

    def epochs_seen(self) -> float:
        return self.epoch + self.pos / max(1, self.n)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "pos": self.pos, "perm": self.perm, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.pos, self.perm = int(state["epoch"]), int(state["pos"]), np.asarray(state["perm"])
        self.rng.bit_generator.state = state["rng"]


@dataclass
class HomefeedTrainResult:
    """What a run produced: directory, steps, epochs seen, wall time (s), last logged loss, why it
    stopped (``epochs``, ``max_steps``, ``max_minutes``), the split time (ISO) and the loss history."""

    run_dir: Path
    steps: int
    epochs: float
    wall_time_s: float
    final_loss: float
    stopped_by: str
    split_iso: str
    history: list[tuple[int, float]] = field(default_factory=list)


def tower_config_for(config: HomefeedTrainConfig, dim: int, user_rows: int, interest_rows: int) -> UserTowerConfig:
    """The :class:`UserTowerConfig` of a training config and the data's sizes."""
    return UserTowerConfig(pin_dim=dim, user_rows=user_rows, interest_rows=interest_rows, history=config.history,
                           hidden=config.hidden, id_dim=config.id_dim, heads=config.heads,
                           mask_blocks=config.mask_blocks, id_embeddings=config.id_embeddings,
                           feature_crossing=config.feature_crossing, id_dropout=config.id_dropout)


@dataclass
class HomefeedTrainState:
    """What changes while training and what ``checkpoint.pt`` holds: the tower, temperature, both
    optimizers, the example sampler, the negative/condition RNG, the step and the seconds spent before
    this process — :meth:`save` writes it atomically, :meth:`restore` (``--resume``) reads it back."""

    tower: UserTower
    temperature: Temperature
    dense: torch.optim.AdamW
    sparse: torch.optim.SparseAdam
    sampler: ExampleSampler
    rng: np.random.Generator
    step: int = 0
    elapsed_before: float = 0.0

    @classmethod
    def create(cls, tower: UserTower, config: HomefeedTrainConfig, n_examples: int) -> HomefeedTrainState:
        temperature = Temperature(config.temperature, learn=config.learn_temperature, max_value=1.0)
        dense = torch.optim.AdamW([*tower.dense_parameters(), temperature.log_tau], lr=config.lr,
                                  weight_decay=config.weight_decay)
        sparse = torch.optim.SparseAdam(tower.sparse_parameters(), lr=config.id_lr)
        return cls(tower, temperature, dense, sparse, ExampleSampler(n_examples, config.seed),
                   np.random.default_rng([config.seed, 1]))

    def set_lr(self, config: HomefeedTrainConfig, factor: float) -> None:
        for g in self.dense.param_groups:
            g["lr"] = config.lr * factor
        for g in self.sparse.param_groups:
            g["lr"] = config.id_lr * factor

    def save(self, path: Path, config: HomefeedTrainConfig, elapsed_s: float) -> None:
        state = {"tower": self.tower.state_dict(), "temperature": self.temperature.state_dict(),
                 "dense": self.dense.state_dict(), "sparse": self.sparse.state_dict(),
                 "sampler": self.sampler.state_dict(), "rng": self.rng.bit_generator.state,
                 "torch_rng": torch.get_rng_state(), "step": self.step, "elapsed_s": elapsed_s,
                 "config": config.to_dict()}
        tmp = path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def restore(self, path: Path) -> None:
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.tower.load_state_dict(state["tower"])
        self.temperature.load_state_dict(state["temperature"])
        self.dense.load_state_dict(state["dense"])
        self.sparse.load_state_dict(state["sparse"])
        self.sampler.load_state_dict(state["sampler"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.step, self.elapsed_before = int(state["step"]), float(state["elapsed_s"])


@dataclass
class _Batches:
    """Everything a step needs to assemble its batch: the data, examples, ID rows, interest bags, pin
    interests and the frozen pin matrix as a tensor."""

    data: HomefeedData
    ex: Examples
    user_rows: np.ndarray
    bags: InterestBags
    pin_interest: np.ndarray
    pins: torch.Tensor


def _train_step(state: HomefeedTrainState, b: _Batches, config: HomefeedTrainConfig) -> tuple[float, float]:
    """One update on the next batch; returns ``(loss, in-batch accuracy)``."""
    log, ex = b.data.log, b.ex
    idx = state.sampler.next(config.batch_size)
    ev, users = ex.events[idx], ex.users[idx]
    target = log.pins[ev]
    cond = np.where(state.rng.random(len(idx)) < config.condition_rate, b.pin_interest[target], 0)
    batch = build_batch(log, users, ex.n_before[idx], log.times[ev], config.history, b.user_rows, b.bags, cond)
    inputs = {k: torch.from_numpy(v) for k, v in batch.inputs(b.data.pin_matrix).items()}
    neg = torch.from_numpy(state.rng.integers(0, len(b.data.pin_ids), size=config.random_negatives))
    starts = log.offsets[users]
    known = [log.pins[s : s + n] for s, n in zip(starts.tolist(), ex.user_n_train[users].tolist(), strict=True)]
    ids = torch.from_numpy(target)
    out = in_batch_softmax_loss(state.tower(**inputs), b.pins[ids], state.temperature(), ids,
                                extra=b.pins[neg] if len(neg) else None, extra_ids=neg if len(neg) else None,
                                known_positives=known)
    state.dense.zero_grad(set_to_none=True)
    state.sparse.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(state.tower.dense_parameters(), 1.0)
    state.dense.step()
    state.sparse.step()
    state.step += 1
    return float(out.loss.detach()), out.accuracy


def train_homefeed(config: HomefeedTrainConfig, data: HomefeedData | None = None, resume: bool = False
                   ) -> HomefeedTrainResult:
    """Train a user tower as ``config`` says (``data``: an already loaded dataset, e.g. shared by
    ablation variants); ``resume`` continues from ``OUT/checkpoint.pt``."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        data = data if data is not None else load_homefeed(config.data)
        split = split_time(data.log, config.eval_days, config.split_time)
        ex = Examples.build(data, split)
        if len(ex.events) < config.batch_size:
            raise ValueError(f"only {len(ex.events)} training examples before the split {format_time(split)}; "
                             f"need at least --batch-size {config.batch_size}")
        trained_users = [u for u, n in zip(data.log.user_ids, ex.user_n_train, strict=True) if n > 0]
        users, interests = IdVocab(trained_users, config.user_id_buckets), IdVocab(data.interest_ids())
        batches = _Batches(data, ex, users.rows(data.log.user_ids), data.bags(interests),
                           data.pin_interest_rows(interests), torch.tensor(data.pin_matrix))
        tower_config = tower_config_for(config, data.dim, users.size, interests.size)
        out = Path(config.out)
        write_run_meta(out, tower_config, users, interests, split)
        state = HomefeedTrainState.create(UserTower(tower_config), config, len(ex.events))
        if resume:
            state.restore(out / CHECKPOINT)
        planned = max(1, math.ceil(config.epochs * len(ex.events) / config.batch_size))
        total = planned if config.max_steps is None else min(planned, config.max_steps)
        budget = None if config.max_minutes is None else 60.0 * config.max_minutes
        t0 = time.perf_counter()
        stopped_by, history, loss = "epochs" if total == planned else "max_steps", [], float("nan")
        state.tower.train()
        with (out / TRAIN_LOG).open("a" if resume else "w") as log_file, \
                tqdm(total=total, initial=state.step, desc="homefeed train", unit="step",
                     disable=not config.progress) as bar:
            while state.step < total:
                elapsed = state.elapsed_before + time.perf_counter() - t0
                if budget is not None and elapsed >= budget:
                    stopped_by = "max_minutes"
                    break
                factor = lr_factor(max(state.step / total, elapsed / budget if budget else 0.0), config.warmup_ratio)
                state.set_lr(config, factor)
                loss, accuracy = _train_step(state, batches, config)
                bar.update(1)
                if state.step % config.log_every == 0 or state.step == total:
                    bar.set_postfix(loss=f"{loss:.3f}", acc=f"{accuracy:.2f}")
                    history.append((state.step, loss))
                    log_file.write(json.dumps({
                        "step": state.step, "loss": round(loss, 5), "accuracy": round(accuracy, 4),
                        "lr": config.lr * factor, "temperature": float(state.temperature()),
                        "epoch": round(state.sampler.epochs_seen(), 4),
                        "seconds": round(state.elapsed_before + time.perf_counter() - t0, 2)}) + "\n")
        wall = state.elapsed_before + time.perf_counter() - t0
        state.tower.eval()
        torch.save(state.tower.state_dict(), out / TOWER_WEIGHTS)
        state.save(out / CHECKPOINT, config, wall)
        result = HomefeedTrainResult(out, state.step, state.sampler.epochs_seen(), wall, loss, stopped_by,
                                     format_time(split), history)
        summary = {"config": config.to_dict(), "split": split, "split_iso": format_time(split),
                   "examples": len(ex.events), "users": data.log.n_users, "trained_users": len(trained_users),
                   "pins": len(data.pin_ids), "dim": data.dim, "steps": state.step,
                   "epochs": round(result.epochs, 4), "wall_time_s": round(wall, 2), "final_loss": loss,
                   "stopped_by": stopped_by, "temperature": float(state.temperature()),
                   "parameters": {"dense": sum(p.numel() for p in state.tower.dense_parameters()),
                                  "id_tables": sum(p.numel() for p in state.tower.sparse_parameters())}}
        (out / TRAIN_SUMMARY).write_text(json.dumps(summary, indent=2))
        return result
    finally:
        torch.set_num_threads(previous_threads)
