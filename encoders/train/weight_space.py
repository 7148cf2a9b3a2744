"""Operations on a model's weights as points in weight space: interpolation towards the starting
weights (WiSE-FT) and the running average of the last part of training (tail averaging, as in SWA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn


def interpolate_weights(model: nn.Module, start: dict[str, torch.Tensor], alpha: float) -> None:
    """In place: every floating-point weight becomes ``alpha × current + (1 − alpha) × start``."""
    current = model.state_dict()
    model.load_state_dict({
        k: torch.lerp(start[k].to(v.dtype), v, alpha) if v.is_floating_point() else v for k, v in current.items()
    })


class TailAverage:
    """Uniform running average of ``model``'s trainable parameters over the steps whose training
    progress (in [0, 1]) is at least ``1 - fraction``; ``fraction == 0`` keeps nothing.

    Call :meth:`update` once after every optimizer step; :meth:`save` writes a copy of the model
    holding the averaged parameters (the model itself is left as it is).
    """

    def __init__(self, model: nn.Module, fraction: float) -> None:
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"average fraction must be in [0, 1), got {fraction}")
        self.model, self.fraction = model, fraction
        self.steps = 0
        self.mean: dict[str, torch.Tensor] = {}

    def update(self, progress: float) -> None:
        """Fold the current parameters into the mean when ``progress`` lies in the averaged tail."""
        if self.fraction <= 0.0 or progress < 1.0 - self.fraction:
            return
        self.steps += 1
        with torch.no_grad():
            for name, p in self.model.named_parameters():
                if not p.requires_grad:
                    continue
                if name in self.mean:
                    self.mean[name].lerp_(p.detach(), 1.0 / self.steps)
                else:
                    self.mean[name] = p.detach().clone()

    def averaged_state(self) -> dict[str, torch.Tensor]:
        """The model's state dict with the averaged parameters in place of the current ones."""
        return {k: self.mean.get(k, v).clone() for k, v in self.model.state_dict().items()}

    def save(self, directory: str | Path) -> None:
        """Write the averaged model with the model's own ``save(directory)`` (a QueryTower)."""
        import copy

        averaged = copy.deepcopy(self.model)
        averaged.load_state_dict(self.averaged_state())
        averaged.save(directory)

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "mean": self.mean}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.mean = int(state["steps"]), dict(state["mean"])
