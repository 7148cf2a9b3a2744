"""Feature crossing: MaskNet's instance-guided mask blocks (Wang et al., 2021), and the plain MLP ablation.

A :class:`MaskBlock` multiplies a (layer-normalised) hidden vector element-wise by a mask computed from
the *instance's* feature embeddings ``v`` — a two-layer "aggregation + projection" net — and then
applies a linear layer, layer norm and ReLU::

    mask = W2 · relu(W1 · v + b1) + b2                       (B, H_in)
    out  = relu(LN(W_h · (mask ⊙ LN(x))))                    (B, H)

:class:`SerialMaskNet` stacks blocks, each taking the previous block's output and its own mask from
``v`` (the first block takes ``v`` itself). :class:`PlainMLP` is the ``--no-feature-crossing``
ablation: the same depth and widths, without the multiplicative masks.
"""

from __future__ import annotations

import torch
from torch import nn


class MaskBlock(nn.Module):
    """One instance-guided mask block: ``x (B, in_dim)``, ``v (B, emb_dim)`` → ``(B, out_dim)``."""

    def __init__(self, in_dim: int, emb_dim: int, out_dim: int, reduction: float = 1.0):
        super().__init__()
        agg = max(1, round(emb_dim * reduction))
        self.mask = nn.Sequential(nn.Linear(emb_dim, agg), nn.ReLU(), nn.Linear(agg, in_dim))
        self.norm_in = nn.LayerNorm(in_dim)
        self.hidden = nn.Linear(in_dim, out_dim, bias=False)
        self.norm_out = nn.LayerNorm(out_dim)
        with torch.no_grad():  # start near mask = 1: the block first behaves like a plain layer
            self.mask[2].weight.mul_(0.1)
            self.mask[2].bias.fill_(1.0)

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.norm_out(self.hidden(self.mask(v) * self.norm_in(x))))


class SerialMaskNet(nn.Module):
    """``blocks`` serial mask blocks: ``v (B, emb_dim)`` → ``(B, hidden)`` (``blocks = 0``: a linear layer)."""

    def __init__(self, emb_dim: int, hidden: int, blocks: int = 2):
        super().__init__()
        dims = [emb_dim] + [hidden] * blocks
        self.blocks = nn.ModuleList(MaskBlock(dims[i], emb_dim, hidden) for i in range(blocks))
        self.proj = nn.Linear(emb_dim, hidden) if blocks == 0 else None

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        if self.proj is not None:
            return torch.relu(self.proj(v))
        x = v
        for block in self.blocks:
            x = block(x, v)
        return x


class PlainMLP(nn.Module):
    """The ablation of :class:`SerialMaskNet`: ``LN → Linear → LN → ReLU`` per block, no masks."""

    def __init__(self, emb_dim: int, hidden: int, blocks: int = 2):
        super().__init__()
        dims = [emb_dim] + [hidden] * max(1, blocks)
        self.layers = nn.Sequential(*[
            nn.Sequential(nn.LayerNorm(dims[i]), nn.Linear(dims[i], hidden, bias=False), nn.LayerNorm(hidden),
                          nn.ReLU())
            for i in range(max(1, blocks))
        ])

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.layers(v)
