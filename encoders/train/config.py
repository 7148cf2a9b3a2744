"""Training configuration and result records (pure data, JSON-serialisable)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal


@dataclass
class TrainConfig:
    """Everything a training run needs; written into ``train_summary.json`` and ``checkpoint.pt``.

    ``length_buckets``: each step encodes its queries in this many length-sorted chunks, each padded
    to its own longest query (less padding; 1 = one padded batch).
    ``train_layers``: fine-tune only the top N Transformer layers (the embeddings and lower layers
    are frozen; ``None`` = all, ``0`` = readout only) — a cheaper step on a busy CPU.
    Learning rates are per optimizer step. ``epochs`` may be fractional. ``max_steps`` /
    ``max_minutes`` stop early (the LR schedule is laid out over ``min(max_steps, epochs × batches)``
    steps, or over ``schedule_steps`` when given — e.g. to stop at ``max_steps`` and resume later
    on the same schedule). Negatives per step, appended as shared columns of the softmax:

    * ``hard_negatives`` per query, mined by ``hard_negative_source`` in ``hard_negative_window``;
    * ``random_negatives`` uniform random pins (``-1`` = the whole catalogue: a full softmax, cheap
      because pin embeddings are frozen);
    * ``queue_size`` most recent batch positives (a popularity-weighted negative cache).

    ``mask_similar_pins`` c: a negative column whose pin has cosine > c with the row's positive pin is
    masked (a near-duplicate product is likely relevant too). ``pseudo_queries`` extra rows per step
    are query-like cuts of random pins' own texts (:mod:`encoders.train.pseudo_queries`), weighted
    ``pseudo_query_weight`` in the loss; ``pseudo_query_variants`` adds query-like variation learned
    from the training pairs (plural forms, words cut short, added context words;
    :mod:`encoders.train.query_variants`); ``mask_pseudo_query_matches`` masks, in a pseudo-query's
    row, every other pin whose text holds all words of its cut (they fit it as well as its own pin).
    ``interpolate_start`` α < 1 saves ``α × trained + (1 − α) × starting weights`` as the tower
    (weight-space ensembling, WiSE-FT); the checkpoint keeps the trained weights for resuming.
    ``precision`` ``"bf16"`` runs the tower's forward pass under CPU bfloat16 autocast and takes the
    query × pin dot products in bfloat16 (float32 accumulation; weights, gradients, optimizer,
    logits and softmax stay float32): faster steps on a CPU with native bfloat16 (AVX512-BF16 /
    AMX), slower on one without. ``hold_out_validation`` also keeps the validation queries
    (:func:`~encoders.data.split.is_validation_query`, ~10%) out of training, so settings can be
    chosen on them instead of on the eval split. ``average_last`` f > 0 also keeps the uniform
    average of the trained weights over the last fraction f of the schedule (tail averaging, as in
    SWA) and saves it as a second tower in ``RUN/average/``; the run's own tower stays the final weights.
    """

    data: str
    out: str
    base_model: str | None = None
    pooling: Literal["mean", "cls"] = "mean"
    max_length: int = 32
    length_buckets: int = 8
    readout_init: Literal["auto", "identity", "random"] = "auto"
    train_layers: int | None = None
    epochs: float = 2.0
    batch_size: int = 128
    lr: float = 5e-5
    readout_lr: float = 1e-3
    temperature: float = 0.05
    learn_temperature: bool = False
    temperature_lr: float = 1e-2
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    max_per_pin: int | None = 20
    task_weights: dict[str, float] | None = None
    hard_negatives: int = 0
    hard_negative_source: Literal["bm25", "zeroshot", "both"] = "bm25"
    hard_negative_window: tuple[int, int] = (10, 100)
    hard_negative_exclude_grade: float | None = 2.0
    hard_negative_cache: str | None = None
    random_negatives: int = 0
    queue_size: int = 0
    mask_known_positives: bool = True
    mask_similar_pins: float | None = None
    extra_positive_grade: float | None = None
    extra_positive_weight: float = 0.5
    pseudo_queries: int = 0
    pseudo_query_weight: float = 0.5
    pseudo_query_variants: bool = False
    interpolate_start: float = 1.0
    mask_pseudo_query_matches: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"
    hold_out_validation: bool = False
    average_last: float = 0.0
    max_minutes: float | None = None
    max_steps: int | None = None
    schedule_steps: int | None = None
    threads: int = 2
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = 200
    resume: bool = False
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hard_negative_window"] = list(self.hard_negative_window)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        if "hard_negative_window" in d:
            d["hard_negative_window"] = tuple(d["hard_negative_window"])
        return cls(**d)


@dataclass
class TrainResult:
    """What a run produced: its directory, steps taken, epochs seen, wall time (s), last logged loss,
    why it stopped (``"epochs"``, ``"max_steps"`` or ``"max_minutes"``) and the loss history
    ``[(step, loss)]`` of the logging steps."""

    run_dir: Path
    steps: int
    epochs: float
    wall_time_s: float
    final_loss: float
    stopped_by: str
    temperature: float
    history: list[tuple[int, float]] = field(default_factory=list)
