"""ID embedding tables behind one small interface — the stand-in for torchrec.

torchrec (sharded embedding tables with fused optimizers) is not installable next to this project's
pinned ``torch==2.13.0`` CPU wheel, so :class:`IdTable` wraps :class:`torch.nn.EmbeddingBag`:
``forward(ids (B, M) int64, weights (B, M) float32 | None) -> (B, dim)`` = the weighted sum of the
rows of each bag, row 0 being padding/unknown (always the zero vector). Gradients are *sparse*
(only the rows a batch touches), to be stepped by :class:`torch.optim.SparseAdam`, so a step costs
O(rows touched), not O(table) — what makes a 1M-user table cheap. Swapping in torchrec's
``EmbeddingBagCollection`` later means reimplementing this one class.

Under ONNX export the bag is computed as ``gather + weighted sum`` (the same numbers; the exported
graph then needs no ``EmbeddingBag`` loop).
"""

from __future__ import annotations

import torch
from torch import nn


class IdTable(nn.Module):
    """``rows × dim`` embedding table with sparse gradients; row 0 is the zero padding/unknown row."""

    def __init__(self, rows: int, dim: int, init_std: float = 0.05):
        super().__init__()
        if rows < 1 or dim < 1:
            raise ValueError(f"an ID table needs rows >= 1 and dim >= 1, got {rows} x {dim}")
        self.bag = nn.EmbeddingBag(rows, dim, mode="sum", sparse=True, padding_idx=0)
        with torch.no_grad():
            self.bag.weight.normal_(0.0, init_std)
            self.bag.weight[0].zero_()

    @property
    def rows(self) -> int:
        return int(self.bag.num_embeddings)

    @property
    def dim(self) -> int:
        return int(self.bag.embedding_dim)

    def forward(self, ids: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``ids (B,)`` or ``(B, M)`` int64 rows, ``weights`` of the same shape (default 1) → ``(B, dim)``."""
        if ids.dim() == 1:
            ids = ids[:, None]
            weights = None if weights is None else weights[:, None]
        if weights is None:
            weights = torch.ones(ids.shape, dtype=self.bag.weight.dtype, device=ids.device)
        if torch.onnx.is_in_onnx_export():
            w = weights * (ids != 0).to(weights.dtype)
            return (nn.functional.embedding(ids, self.bag.weight) * w.unsqueeze(-1)).sum(dim=1)
        return self.bag(ids, per_sample_weights=weights.to(self.bag.weight.dtype))
