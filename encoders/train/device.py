"""Where a training step runs and in what precision (``--device``, ``--precision``).

* :func:`resolve_device`: ``auto`` (CUDA when torch sees a GPU, else the CPU), ``cpu``, ``cuda``
  (under ``torchrun``: ``cuda:LOCAL_RANK``) or ``cuda:N`` (the text is checked by
  :func:`~encoders.train.config.parse_device`).
* :class:`Precision`: the autocast context of the tower's forward pass — ``bf16`` on a CPU or a
  GPU, ``fp16`` on a GPU only — and the update that follows the loss: backward (with ``fp16``
  scaled by a :class:`torch.amp.GradScaler`, so small gradients do not underflow in half
  precision), the data-parallel reduction of what DDP does not reduce, gradient clipping on the
  unscaled gradients and the optimizer step (skipped by the scaler when a gradient overflowed).
* :class:`OnDevice`: the tower behind a module that moves the token ids to its device (the
  tokenizer makes CPU tensors).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from encoders.train.config import parse_device

if TYPE_CHECKING:
    from encoders.train.distributed import RankShard


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """The torch device of ``spec``. ``local_rank`` (set under ``torchrun``) picks the GPU of
    ``cuda``; a ValueError naming ``--device`` when CUDA is asked
    for and missing, or when ranks would share one GPU."""
    spec = parse_device(spec)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available (torch.cuda.is_available() is False); "
                         "use --device cpu or auto")
    if ":" in spec:
        if local_rank is not None:
            raise ValueError(f"--device {spec} puts every torchrun rank on one GPU; use --device cuda "
                             "(rank r then uses cuda:LOCAL_RANK)")
        index = int(spec.split(":")[1])
    else:
        index = local_rank or 0
    if index >= torch.cuda.device_count():
        raise ValueError(f"--device: cuda:{index} does not exist ({torch.cuda.device_count()} GPU(s) visible)")
    return torch.device("cuda", index)


class Precision:
    """Autocast and update of one step in ``precision`` (``fp32``, ``bf16``, ``fp16``) on ``device``."""

    def __init__(self, precision: str, device: torch.device):
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("--precision fp16 needs a CUDA --device (on a CPU use bf16)")
        self.precision, self.device = precision, device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
        self.scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None

    def autocast(self) -> Any:
        """The context the tower's forward pass runs in (a no-op in fp32)."""
        return torch.autocast(self.device.type, dtype=self.dtype or torch.bfloat16, enabled=self.dtype is not None)

    def update(self, loss: torch.Tensor, model: nn.Module, optimizer: torch.optim.Optimizer, max_grad_norm: float,
               shard: RankShard | None = None) -> None:
        """Backward, reduce (data parallel), clip the gradients of ``model``'s trainable parameters
        to ``max_grad_norm`` and step ``optimizer`` (the caller zeroes the gradients first)."""
        if self.scaler is None:
            loss.backward()
        else:
            self.scaler.scale(loss).backward()
        if shard is not None:
            shard.reduce_outside_ddp(optimizer)
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], max_grad_norm)
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return {} if self.scaler is None else {"scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])


class OnDevice(nn.Module):
    """``module(input_ids, attention_mask)`` with both moved to ``device`` first."""

    def __init__(self, module: nn.Module, device: torch.device):
        super().__init__()
        self.module, self.device = module, device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.module(input_ids.to(self.device), attention_mask.to(self.device))
