"""Softmax over in-batch positives (plus optional extra negatives) into a frozen pin space.

For a batch of B (query, pin) pairs with query embeddings ``q (B, D)`` and the frozen embeddings of
their engaged pins ``p (B, D)``::

    logits[j, i] = q_j · p_i / temperature          (B, B)   labels = diagonal

Extra negatives ``n (K, D)`` (random pins, mined hard negatives, a queue of recent positives, or
the whole catalogue) are appended as K more columns shared by every query: ``(B, B + K)``.

Masking (logit → -inf, so the column is neither a negative nor a positive):

* an in-batch column ``i != j`` holding the *same pin* as the query's positive (duplicate pins);
* an extra column holding the query's positive pin;
* when ``known_positives`` is given: any off-diagonal column whose pin is another known positive of
  query j (an engaged/judged-relevant pin must not be pushed away).

Pins are identified by integer ids (row numbers in the pin matrix); masking compares ids, not vectors.

**logQ correction** (``column_log_q (B + K,)``, see :class:`encoders.train.item_frequency.LogQ`):
``logits[j, c] -= column_log_q[c]`` for every cell but the label ``(j, j)``, i.e. the log of the
expected count of the column's pin among the step's sampled columns is subtracted from the
negatives, never from the row's own positive. This is the sampled-softmax estimator of Bengio &
Senécal (2008) / Jean et al. (2015): the positive is always present (probability 1), the negatives
are importance-weighted by ``1 / expected count``. Yi et al. (2019) subtract ``log q`` from every
in-batch column including the diagonal; Khrylchenko et al. (2025, "Correcting the LogQ
Correction") show the positive should be left out because it is not sampled. OmniSearchSage
(``pinterest/atg-research``, ``modules/metric_learning_softmax.py``) subtracts ``log(batch size ×
count / total)`` (the same expected count) from the negatives and corrects the positive separately
by ``log P(pin | query)``, which this loss does not do.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

NEG_INF = float("-inf")


class Temperature(nn.Module):
    """A softmax temperature τ > 0, fixed or learned as ``log τ`` and clamped to ``[min, max]``."""

    def __init__(self, init: float = 0.05, learn: bool = False, min_value: float = 0.01, max_value: float = 1.0):
        super().__init__()
        if not (min_value <= init <= max_value):
            raise ValueError(f"temperature init {init} outside [{min_value}, {max_value}]")
        self.min_value, self.max_value = float(min_value), float(max_value)
        self.log_tau = nn.Parameter(torch.tensor(math.log(init)), requires_grad=learn)

    @property
    def learned(self) -> bool:
        return bool(self.log_tau.requires_grad)

    def forward(self) -> torch.Tensor:
        """The current τ as a 0-d tensor (gradient flows through the clamp inside the bounds)."""
        return self.log_tau.exp().clamp(self.min_value, self.max_value)


@dataclass
class LossOutput:
    """``loss`` (0-d), ``logits (B, B + K)`` after masking, and in-batch accuracy (share of rows
    whose diagonal logit is the row maximum); ``distill`` the distillation term (0-d, unweighted)
    when the step added one to ``loss``."""

    loss: torch.Tensor
    logits: torch.Tensor
    accuracy: float
    distill: torch.Tensor | None = None


def _columns_holding(col_ids: np.ndarray, wanted: Sequence[Collection[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(row j, column c)`` with ``col_ids[c]`` in ``wanted[j]`` → ``(rows (H,), cols (H,))``
    int64; vectorised (one sort of the columns, one binary search per wanted id)."""
    sizes = np.fromiter((len(w) for w in wanted), dtype=np.int64, count=len(wanted))
    ids = np.fromiter(itertools.chain.from_iterable(wanted), dtype=np.int64, count=int(sizes.sum()))
    order = np.argsort(col_ids, kind="stable")
    sorted_ids = col_ids[order]
    lo = np.searchsorted(sorted_ids, ids, side="left")
    n = np.searchsorted(sorted_ids, ids, side="right") - lo  # columns holding each wanted id
    rows = np.repeat(np.repeat(np.arange(len(wanted), dtype=np.int64), sizes), n)
    first = np.repeat(lo, n)
    within = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(np.cumsum(n) - n, n)
    return rows, order[first + within].astype(np.int64)


def mask_cells(
    pos_ids: torch.Tensor,
    extra_ids: torch.Tensor | None = None,
    known_positives: Sequence[Collection[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cells of a ``(B, B + K)`` logit matrix that must be set to -inf, as ``(rows (H,), cols (H,))``
    int64 (sparse: a few per row, where a dense mask would be B × (B + K) booleans).

    ``pos_ids (B,)`` int64 pin ids of the batch positives; ``extra_ids (K,)`` int64 ids of the extra
    negative columns; ``known_positives[j]`` = all pin ids known relevant for query j. A cell may be
    listed twice; the diagonal (each row's label) never is.
    """
    b = pos_ids.shape[0]
    col_ids = (pos_ids if extra_ids is None else torch.cat([pos_ids, extra_ids])).numpy()
    if known_positives is not None and len(known_positives) != b:
        raise ValueError(f"known_positives has {len(known_positives)} rows, batch has {b}")
    # rows 0..B-1 of ``wanted``: the row's own positive pin; rows B..2B-1: its known positives (one
    # call, so the columns are sorted once per step)
    wanted: list[Collection[int]] = [(p,) for p in pos_ids.tolist()]
    rows, cols = _columns_holding(col_ids, wanted + list(known_positives or ()))
    rows = rows % b
    keep = rows != cols  # the label column (row j's own diagonal) stays
    return torch.from_numpy(rows[keep]), torch.from_numpy(cols[keep])


def build_mask(
    pos_ids: torch.Tensor,
    extra_ids: torch.Tensor | None = None,
    known_positives: Sequence[Collection[int]] | None = None,
) -> torch.Tensor:
    """Boolean ``(B, B + K)`` mask, True where a logit must be set to -inf: the dense form of
    :func:`mask_cells` (same arguments)."""
    b = pos_ids.shape[0]
    k = 0 if extra_ids is None else extra_ids.shape[0]
    mask = torch.zeros((b, b + k), dtype=torch.bool)
    rows, cols = mask_cells(pos_ids, extra_ids, known_positives)
    mask[rows, cols] = True
    return mask


def column_scores(x: torch.Tensor, p: torch.Tensor, extra: Sequence[torch.Tensor]) -> torch.Tensor:
    """Dot products of rows ``x (B, D)`` with every column: the batch positives ``p (B, D)`` then the
    extra blocks ``(K_b, D)`` in order → ``(B, B + K)``."""
    return torch.cat([x @ p.to(x.dtype).T, *[x @ e.to(x.dtype).T for e in extra]], dim=1)


def near_duplicate_mask(
    p: torch.Tensor, extra: Sequence[torch.Tensor], threshold: float
) -> torch.Tensor:
    """Bool ``(B, B + K)``: True where a column's pin has cosine ``> threshold`` with the row's
    positive pin — likely the same product in another size or colour, i.e. a false negative.

    ``p (B, D)`` positive pin embeddings, ``extra`` blocks ``(K_b, D)`` of the extra columns, all
    L2-normalised. The diagonal is False.
    """
    with torch.no_grad():
        out = column_scores(p, p, extra) > threshold
        out[torch.arange(p.shape[0]), torch.arange(p.shape[0])] = False
    return out


def in_batch_softmax_loss(
    q: torch.Tensor,
    p: torch.Tensor,
    temperature: torch.Tensor | float,
    pos_ids: torch.Tensor,
    extra: torch.Tensor | Sequence[torch.Tensor] | None = None,
    extra_ids: torch.Tensor | None = None,
    known_positives: Sequence[Collection[int]] | None = None,
    weights: torch.Tensor | None = None,
    also_mask: torch.Tensor | None = None,
    score_dtype: torch.dtype | None = None,
    column_log_q: torch.Tensor | None = None,
) -> LossOutput:
    """Cross-entropy of each query against its own positive among all (unmasked) columns.

    ``q (B, D)`` query embeddings (trainable), ``p (B, D)`` frozen positive pin embeddings,
    ``temperature`` τ (float or 0-d tensor), ``pos_ids (B,)`` int64 pin ids, ``extra (K, D)`` (or a
    list of blocks ``(K_b, D)`` whose rows follow ``extra_ids`` in order — avoids copying a large
    frozen matrix) and ``extra_ids (K,)`` optional extra negatives, ``weights (B,)`` optional per-pair weights (graded
    positives; the loss is the weighted mean) and ``also_mask (B, B + K)`` bool, more columns to mask
    (e.g. near-duplicates of the row's positive, see :func:`near_duplicate_mask`; the label column
    is never masked). ``score_dtype`` (e.g. ``torch.bfloat16``) computes the dot products in that
    dtype (float32 accumulation; pass ``extra`` already in it to skip a per-step cast); the logits,
    softmax and loss stay float32. ``column_log_q (B + K,)`` is subtracted from every column's
    logits except the label cells (the logQ correction of the module docstring). Returns
    :class:`LossOutput`.
    """
    if q.shape != p.shape:
        raise ValueError(f"q {tuple(q.shape)} and p {tuple(p.shape)} must have the same shape (B, D)")
    if (extra is None) != (extra_ids is None):
        raise ValueError("extra and extra_ids must be given together")
    blocks = [] if extra is None else ([extra] if isinstance(extra, torch.Tensor) else list(extra))
    q_scaled = q / temperature  # (B, D): dividing q, not the (B, B + K) logits, saves a pass over them
    if score_dtype is None:
        logits = column_scores(q_scaled, p, blocks)
    else:
        logits = column_scores(q_scaled.to(score_dtype), p, blocks).float()
    b = q.shape[0]
    if column_log_q is not None:
        if column_log_q.shape != (logits.shape[1],):
            raise ValueError(
                f"column_log_q {tuple(column_log_q.shape)} must hold one value per column ({logits.shape[1]})")
        diag = torch.arange(b, device=logits.device)
        label_logits = logits[diag, diag]  # a copy: the label cells keep their uncorrected value
        logits.sub_(column_log_q.to(device=logits.device, dtype=logits.dtype))  # in place, as the masking
        logits[diag, diag] = label_logits
    rows, cols = mask_cells(pos_ids, extra_ids, known_positives)
    logits[rows.to(logits.device), cols.to(logits.device)] = NEG_INF  # in place: no (B, B + K) copy
    if also_mask is not None:
        if also_mask.shape != logits.shape:
            raise ValueError(f"also_mask {tuple(also_mask.shape)} must have the logits' shape {tuple(logits.shape)}")
        also = also_mask.to(logits.device).clone()
        also[torch.arange(q.shape[0]), torch.arange(q.shape[0])] = False  # the label is never masked
        logits = logits.masked_fill(also, NEG_INF)
    labels = torch.arange(q.shape[0], device=q.device)
    per_row = nn.functional.cross_entropy(logits, labels, reduction="none")
    if weights is None:
        loss = per_row.mean()
    else:
        w = weights.to(per_row.dtype)
        loss = (per_row * w).sum() / w.sum().clamp(min=1e-12)
    with torch.no_grad():
        accuracy = float((logits.argmax(dim=1) == labels).float().mean()) if q.shape[0] else 0.0
    return LossOutput(loss=loss, logits=logits, accuracy=accuracy)
