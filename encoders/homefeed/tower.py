"""The user tower: recent engaged pins, ID embeddings and interests → one vector in the frozen pin space.

Inputs for a batch of B users (history length L, pin dimension D, up to M declared interests)::

    hist_vectors   (B, L, D) float32   frozen embeddings of the user's last L positive pins (oldest first)
    hist_mask      (B, L)    float32   1 = real event, 0 = padding
    hist_age       (B, L)    float32   days between the event and the reference time (>= 0)
    hist_action    (B, L)    int64     index into ACTIONS (closeup, click, save, hide)
    user_row       (B,)      int64     user ID row (0 = unknown)
    interest_rows  (B, M)    int64     declared interest rows (0 = padding)
    interest_weights (B, M)  float32   1/count on real entries (the bag is their mean)
    condition_row  (B,)      int64     interest to condition on (0 = none: the unconditional embedding)

How they are combined:

1. **Time-aware attention pooling.** Each event becomes ``h_i = LN(W_p p_i + E_age[bucket(age_i)] +
   E_action[a_i])`` of width ``id_dim`` (age buckets are log2-spaced: hours, days, weeks, months). ``heads`` learned
   queries (plus the condition's embedding) attend over ``h``; each head returns the attention-weighted
   mean of the *raw* pin vectors ``p_i`` — a recency- and interest-aware summary in pin space.
2. **ID embeddings** (:class:`~encoders.homefeed.id_table.IdTable`, sparse EmbeddingBags): user ID,
   the mean of declared interest IDs, and the condition interest, each with dropout ``id_dropout``.
3. **Feature crossing**: the field embeddings (heads projected to ``id_dim`` each, user, interests,
   condition) are concatenated into ``v`` and crossed by a serial MaskNet (or a plain MLP).
4. **Readout** into the pin space with a residual: ``z = normalize(mean_heads(pooled) + W_o h)``
   (``W_o`` starts at zero, so an untrained tower is the attention-weighted mean of recent pins).

``id_embeddings=False`` drops the user and interest-bag fields (the condition stays: it is the
conditional-retrieval input); ``feature_crossing=False`` replaces MaskNet by :class:`PlainMLP`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch
from torch import nn

from encoders.homefeed.features import INPUT_NAMES, OUTPUT_NAME
from encoders.homefeed.id_table import IdTable
from encoders.homefeed.masknet import PlainMLP, SerialMaskNet
from encoders.homefeed.schema import ACTIONS

AGE_BUCKETS = 14
__all__ = ["AGE_BUCKETS", "INPUT_NAMES", "OUTPUT_NAME", "UserTower", "UserTowerConfig", "age_bucket"]


@dataclass
class UserTowerConfig:
    """Architecture and table sizes of a :class:`UserTower` (``tower_config.json`` of a run)."""

    pin_dim: int
    user_rows: int
    interest_rows: int
    history: int = 32
    hidden: int = 256
    id_dim: int = 64
    heads: int = 4
    mask_blocks: int = 2
    id_embeddings: bool = True
    feature_crossing: bool = True
    id_dropout: float = 0.3

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: str | Path) -> UserTowerConfig:
        d = json.loads(Path(path).read_text())
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def age_bucket(age_days: torch.Tensor) -> torch.Tensor:
    """``(…)`` float days → int64 buckets ``floor(log2(1 + 24·age))`` clipped to ``[0, AGE_BUCKETS - 1]``
    (bucket 0 = within the hour, 5 ≈ a day, 9 ≈ 3 weeks, 13 = ~a year or more)."""
    b = torch.floor(torch.log2(1.0 + 24.0 * age_days.clamp(min=0.0)))
    return b.clamp(0, AGE_BUCKETS - 1).to(torch.int64)


class UserTower(nn.Module):
    """The user tower of the module docstring: :meth:`forward` → ``(B, D)`` L2-normalised."""

    def __init__(self, config: UserTowerConfig):
        super().__init__()
        self.config = c = config
        h, e = c.hidden, c.id_dim  # attention runs in the (small) ID width: the (B, L, D) projection dominates
        self.pin_proj = nn.Linear(c.pin_dim, e)
        self.age = nn.Embedding(AGE_BUCKETS, e)
        self.action = nn.Embedding(len(ACTIONS), e)
        self.event_norm = nn.LayerNorm(e)
        self.queries = nn.Parameter(torch.randn(c.heads, e) * 0.02)
        self.condition_query = nn.Linear(e, c.heads * e, bias=False)
        self.head_proj = nn.Linear(c.pin_dim, e)
        self.interests = IdTable(c.interest_rows, e)  # declared interests and the condition share one table
        self.users = IdTable(c.user_rows, e) if c.id_embeddings else None
        self.id_dropout = nn.Dropout(c.id_dropout)
        n_fields = c.heads + 1 + (2 if c.id_embeddings else 0)
        cross = SerialMaskNet if c.feature_crossing else PlainMLP
        self.cross = cross(n_fields * e, h, c.mask_blocks)
        self.readout = nn.Linear(h, c.pin_dim)
        with torch.no_grad():
            self.readout.weight.zero_()
            self.readout.bias.zero_()

    def sparse_parameters(self) -> list[nn.Parameter]:
        """The ID tables' weights (sparse gradients: step them with SparseAdam)."""
        return [t.bag.weight for t in (self.users, self.interests) if t is not None]

    def dense_parameters(self) -> list[nn.Parameter]:
        sparse = {id(p) for p in self.sparse_parameters()}
        return [p for p in self.parameters() if id(p) not in sparse]

    def forward(self, hist_vectors: torch.Tensor, hist_mask: torch.Tensor, hist_age: torch.Tensor,
                hist_action: torch.Tensor, user_row: torch.Tensor, interest_rows: torch.Tensor,
                interest_weights: torch.Tensor, condition_row: torch.Tensor) -> torch.Tensor:
        c = self.config
        b = hist_vectors.shape[0]
        events = self.event_norm(self.pin_proj(hist_vectors) + self.age(age_bucket(hist_age))
                                 + self.action(hist_action))  # (B, L, E)
        cond = self.id_dropout(self.interests(condition_row))  # (B, E); zero when no condition
        q = self.queries.unsqueeze(0) + self.condition_query(cond).view(b, c.heads, c.id_dim)  # (B, heads, E)
        logits = torch.einsum("bke,ble->bkl", q, events) / math.sqrt(c.id_dim)  # (B, heads, L)
        logits = logits.masked_fill(hist_mask.unsqueeze(1) < 0.5, -1e9)
        weights = torch.softmax(logits, dim=-1) * hist_mask.unsqueeze(1)  # all-padding rows → zeros
        pooled = torch.einsum("bkl,bld->bkd", weights, hist_vectors)  # (B, heads, D)
        field_list = [self.head_proj(pooled).reshape(b, -1), cond]
        if self.users is not None:
            field_list.append(self.id_dropout(self.users(user_row)))
            field_list.append(self.id_dropout(self.interests(interest_rows, interest_weights)))
        x = self.cross(torch.cat(field_list, dim=1))  # (B, hidden)
        z = pooled.mean(dim=1) + self.readout(x)  # (B, D)
        return nn.functional.normalize(z, dim=-1)
