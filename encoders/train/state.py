"""What a training run carries from step to step, and what resuming restores.

* :func:`build_optimizer_and_schedule`: AdamW's parameter groups and the LR schedule, driven by a
  :class:`Schedule` (how far the run is, by steps or by its time budget);
* :class:`TrainState`: the model, temperature, optimizer, scheduler, sampler, negative and
  pseudo-query RNGs, tail average, torch RNG and step — :meth:`TrainState.save` writes them to
  ``checkpoint.pt`` and :meth:`TrainState.restore` (``--resume``) reads them back, so a resumed run
  continues exactly where the saved one stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from encoders.model.tower import QueryTower
from encoders.train.config import TrainConfig
from encoders.train.device import Precision
from encoders.train.loss import Temperature
from encoders.train.sampler import PairSampler
from encoders.train.step import ExtraNegatives, PseudoQueryAugmenter
from encoders.train.weight_space import TailAverage


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction of training, then linear decay to 0."""
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    return max(0.0, (1.0 - progress) / max(1e-9, 1.0 - warmup))


@dataclass
class Schedule:
    """The run's length and its progress in [0, 1], which drives the LR: the share of scheduled steps
    done or, with a time budget, the share of the budget spent, whichever is larger (so the LR
    decays within ``max_minutes``)."""

    total_steps: int  # steps this run takes at most
    schedule_steps: int  # steps the LR schedule is laid out over
    budget_s: float | None
    warmup: float
    progress: float = 0.0

    @classmethod
    def plan(cls, config: TrainConfig, batches_per_epoch: int) -> Schedule:
        total = max(1, math.ceil(config.epochs * batches_per_epoch))
        if config.max_steps is not None:
            total = min(total, config.max_steps)
        budget = None if config.max_minutes is None else 60.0 * config.max_minutes
        return cls(total, config.schedule_steps or total, budget, config.warmup_ratio)

    def advance(self, steps_done: int, elapsed_s: float) -> None:
        """Progress after ``steps_done`` steps and ``elapsed_s`` seconds of training."""
        self.progress = max(steps_done / self.schedule_steps, elapsed_s / self.budget_s if self.budget_s else 0.0)

    def lr_factor(self) -> float:
        return lr_factor(self.progress, self.warmup)


def build_optimizer_and_schedule(
    config: TrainConfig, tower: QueryTower, temperature: Temperature, batches_per_epoch: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR, Schedule]:
    """AdamW with four groups — encoder matrices (weight decay), other encoder parameters, readout
    (``readout_lr``), learned temperature (``temperature_lr``) — frozen parameters left out, and the
    warm-up/linear-decay LR schedule of :class:`Schedule`."""
    readout = list(tower.readout.parameters())
    encoder_params = [p for n, p in tower.named_parameters() if not n.startswith("readout.") and p.requires_grad]
    decay = [p for p in encoder_params if p.ndim > 1]
    no_decay = [p for p in encoder_params if p.ndim <= 1]
    groups = [
        {"params": decay, "lr": config.lr, "weight_decay": config.weight_decay},
        {"params": no_decay, "lr": config.lr, "weight_decay": 0.0},
        {"params": readout, "lr": config.readout_lr, "weight_decay": 0.0},
    ]
    if config.learn_temperature:
        groups.append({"params": [temperature.log_tau], "lr": config.temperature_lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups)
    schedule = Schedule.plan(config, batches_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _step: schedule.lr_factor())
    return optimizer, scheduler, schedule


@dataclass
class TrainState:
    """Everything that changes while training and that a checkpoint saves: the tower, temperature,
    optimizer and scheduler, the sampler's position, the negative and pseudo-query RNGs (and queue),
    the tail average, the fp16 loss scale (``precision``), the step and the seconds spent before this
    process (``elapsed_before``). Nothing in it depends on the number of data-parallel processes:
    every rank holds the same state, the sampler counts global batches and the step global steps,
    so a checkpoint of N processes resumes with any number."""

    tower: QueryTower
    temperature: Temperature
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    sampler: PairSampler
    negatives: ExtraNegatives
    augmenter: PseudoQueryAugmenter
    average: TailAverage
    step: int = 0
    elapsed_before: float = 0.0
    precision: Precision | None = None

    def save(self, path: Path, config: TrainConfig, elapsed_s: float) -> None:
        """Write the checkpoint atomically (a temporary file renamed over ``path``); ``elapsed_s`` is
        the run's training time so far, this process's included, and the torch RNG state is saved."""
        state = {
            "model": self.tower.state_dict(), "temperature": self.temperature.state_dict(),
            "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
            "sampler": self.sampler.state_dict(), "negatives": self.negatives.state_dict(),
            "augmenter": self.augmenter.state_dict(), "average": self.average.state_dict(),
            "torch_rng": torch.get_rng_state(), "step": self.step, "config": config.to_dict(),
            "elapsed_s": elapsed_s, "precision": {} if self.precision is None else self.precision.state_dict(),
        }
        tmp = path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        tmp.replace(path)

    def restore(self, path: Path) -> None:
        """Resume: load a checkpoint that :meth:`save` wrote (the torch RNG state included)."""
        device = next(self.tower.parameters()).device  # a CUDA run's tail average lives on the GPU
        state = torch.load(path, map_location=device, weights_only=False)
        self.tower.load_state_dict(state["model"])
        self.temperature.load_state_dict(state["temperature"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.negatives.load_state_dict(state["negatives"])
        if "augmenter" in state:
            self.augmenter.load_state_dict(state["augmenter"])
        torch.set_rng_state(state["torch_rng"].cpu())
        if "average" in state:
            self.average.load_state_dict(state["average"])
        if self.precision is not None:
            self.precision.load_state_dict(state.get("precision", {}))
        self.step, self.elapsed_before = int(state["step"]), float(state.get("elapsed_s", 0.0))
