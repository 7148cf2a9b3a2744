"""Data-parallel training over ``torchrun`` processes: one global batch, its rows split over ranks.

``torchrun --standalone --nproc-per-node N -m encoders.cli.main train ...`` starts N processes and
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``;
:func:`init_from_env` joins them into one process group (gloo on a CPU, nccl on GPUs).

Why a step equals the single-process step on the same global batch:

* ``--batch-size`` is the **global** batch. Every rank runs the same sampler with the same seed, so
  every rank knows the whole global batch (as every rank of a ``DistributedSampler`` computes the
  whole permutation); it appends the same pseudo-queries and draws the same extra negatives (their
  RNGs start and advance alike). The pin ids of every positive and negative column are therefore
  on every rank already: nothing needs gathering but the query vectors.
* The expensive part, the Transformer, is split by rows: rank r encodes its contiguous share of the
  batch's rows (:func:`row_range`), and :class:`_GatherRows` all-gathers the ``(B, D)`` query
  vectors. Every rank then takes the unchanged single-process loss over the whole batch (every
  column, every mask, the logQ correction and the distillation term as they are), so every rank
  holds the same loss ``L``.
* Gradients: the query vectors are the only gathered tensors that need a gradient. ``∂L/∂q`` is
  the same on every rank, so the backward of the gather needs no communication: rank r keeps the
  rows it encoded, times N, and DDP's mean over ranks of the encoder's gradients is then
  ``Σ_r ∂L/∂θ through rank r's rows`` = the single-process gradient. Parameters outside DDP (the
  learned temperature) get all of ``∂L/∂τ`` on every rank and are averaged
  (:meth:`RankShard.reduce_outside_ddp`).
* Every rank therefore holds the same weights, optimizer, sampler and RNG states; rank 0 writes the
  checkpoint, which counts global steps and global batches — any number of ranks resumes it.
* The cost: the loss (``B × (B + K)`` logits) is computed on every rank; only the encoder is split.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from encoders.model.tower import embed_in_length_buckets
from encoders.train.device import Precision


@dataclass
class DistContext:
    """This process's place in the group: ``rank`` of ``world`` processes, ``local_rank`` on its machine."""

    rank: int
    world: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any (e.g. one rank's clock ran out)."""
        t = torch.tensor([1 if flag else 0])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def close(self) -> None:
        if dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()


def launched_world() -> tuple[int, int] | None:
    """``(WORLD_SIZE, LOCAL_RANK)`` when started by ``torchrun`` with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (world, int(os.environ.get("LOCAL_RANK", "0"))) if world > 1 else None


def init_from_env(device: torch.device) -> DistContext:
    """Join the process group ``torchrun`` described in the environment (gloo on CPU, nccl on CUDA)."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")
    return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def rank_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed of ``rank`` at ``step`` (dropout masks): distinct per rank, and a function of
    the step so a resumed run draws what the uninterrupted one did."""
    return int(np.random.SeedSequence([seed, step, rank, 7]).generate_state(1)[0])


def row_range(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of ``n`` that ``rank`` takes: contiguous shares differing by at most one row."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)



class _GatherRows(torch.autograd.Function):
    """Forward: the rows every rank encoded, in rank order → ``(n, D)`` on every rank (one all-gather
    of padded blocks; the block's last row carries a checksum of the batch, compared across ranks).
    Backward: this rank's rows of the gradient, times the number of ranks — the gradient of the
    loss is the same on every rank (each computes the whole loss), and DDP averages."""

    @staticmethod
    def forward(ctx: Any, local: torch.Tensor, n: int, rank: int, world: int, check: float) -> torch.Tensor:
        width = -(-n // world)
        block = local.new_zeros((width + 1, local.shape[1]))
        block[: local.shape[0]] = local
        block[width, 0] = check
        blocks = [torch.empty_like(block) for _ in range(world)]
        dist.all_gather(blocks, block)
        if any(float(b[width, 0]) != check for b in blocks):
            raise RuntimeError("the ranks built different global batches (their data, options or code differ); "
                               "every rank must see the same dataset and flags")
        ctx.lo, ctx.hi = row_range(n, rank, world)
        ctx.world = world
        return torch.cat([b[: row_range(n, r, world)[1] - row_range(n, r, world)[0]] for r, b in enumerate(blocks)])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        return grad[ctx.lo : ctx.hi] * ctx.world, None, None, None, None


class RankShard:
    """One rank's part of each step: which rows it encodes (:meth:`embed`), DDP around the tower
    (:meth:`wrap`) and the reduction of the gradients DDP does not hold (:meth:`reduce_outside_ddp`)."""

    def __init__(self, ctx: DistContext):
        self.ctx = ctx
        self._ddp_params: set[int] = set()

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` under DDP. ``find_unused_parameters``: the encoder may hold parameters no loss
        reaches (BERT's pooler), which DDP must not wait for."""
        ddp = nn.parallel.DistributedDataParallel(
            model, device_ids=[device] if device.type == "cuda" else None, find_unused_parameters=True)
        self._ddp_params = {id(p) for p in ddp.parameters()}
        return ddp

    def embed(self, tower: nn.Module, tokenizer: Any, queries: list[str], max_length: int, buckets: int,
              precision: Precision) -> torch.Tensor:
        """``(N, D)`` float32 embeddings of all ``queries`` of the step: this rank encodes its rows
        under ``precision``'s autocast, the others' are gathered."""
        n = len(queries)
        if n < self.ctx.world:
            raise ValueError(f"a batch of {n} rows cannot be split over {self.ctx.world} processes; "
                             "raise --batch-size (it is the global batch)")
        lo, hi = row_range(n, self.ctx.rank, self.ctx.world)
        with precision.autocast():
            local = embed_in_length_buckets(tower, tokenizer, queries[lo:hi], max_length, buckets)
        check = float(zlib.crc32("\n".join(queries).encode("utf-8")) % (1 << 24))  # exact in float32
        return _GatherRows.apply(local.float(), n, self.ctx.rank, self.ctx.world, check)

    def reduce_outside_ddp(self, optimizer: torch.optim.Optimizer) -> None:
        """After backward: average over ranks the gradients DDP does not hold (the learned
        temperature), so every rank steps the same."""
        for group in optimizer.param_groups:
            for p in group["params"]:
                if id(p) not in self._ddp_params and p.grad is not None:
                    p.grad.div_(self.ctx.world)
                    dist.all_reduce(p.grad)
