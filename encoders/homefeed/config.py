"""Options of homefeed training (declared once: default, help, checks) and the range-check helper.

The convention is :mod:`encoders.train.config`'s: each option is a dataclass field whose
``metadata["help"]`` is the ``searchsage homefeed train`` help text (``{default}`` shows the default),
``"flag": None`` keeps an option out of the command line, and ``__post_init__`` rejects bad values
with a ValueError naming the ``--flag``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any


def option_flag(config: Any, name: str) -> str:
    """The command-line flag of field ``name`` of the dataclass (instance or class) ``config``."""
    f = next(f for f in fields(config) if f.name == name)
    flag = f.metadata.get("flag", "--" + name.replace("_", "-"))
    return flag or name


def check_ranges(config: Any, positive: Iterable[str] = (), probabilities: Iterable[str] = (),
                 non_negative: Iterable[str] = ()) -> None:
    """ValueError naming the flag of the first field that is not > 0, in [0, 1] or >= 0."""
    for names, ok, rule in ((positive, lambda v: v > 0, "must be > 0"),
                            (probabilities, lambda v: 0.0 <= v <= 1.0, "must be in [0, 1]"),
                            (non_negative, lambda v: v >= 0, "must be >= 0")):
        for name in names:
            value = getattr(config, name)
            if not ok(value):
                raise ValueError(f"{option_flag(config, name)} {rule}, got {value}")


@dataclass
class HomefeedTrainConfig:
    """A homefeed training run: data, time split, the user tower's architecture and the optimisation.

    Training examples are the positive events before the split time T (``eval_days`` before the last
    event unless ``split_time`` is given): each predicts its pin from the user's ``history`` most
    recent earlier positive events, the user's ID and declared interests — and, for a share
    ``condition_rate`` of examples, the target pin's interest as the condition (conditional retrieval).
    Softmax over the batch's target pins plus ``random_negatives`` uniform pins; the user's other
    pre-T positives are masked as negatives.
    """

    data: str = field(metadata={"help": "homefeed dataset directory (pins.parquet with embedding, events.parquet)"})
    out: str = field(metadata={"help": "run directory to write"})
    eval_days: float = field(default=14.0, metadata={
        "help": "the split time T is this many days before the last event (default {default})"})
    split_time: str | None = field(default=None, metadata={
        "metavar": "ISO", "help": "the split time T as an ISO timestamp (UTC; overrides --eval-days)"})
    history: int = field(default=32, metadata={"help": "recent positive events per user fed to the tower (default {default})"})
    hidden: int = field(default=256, metadata={"help": "width of the feature-crossing block (default {default})"})
    id_dim: int = field(default=64, metadata={"help": "user/interest ID embedding size (default {default})"})
    heads: int = field(default=4, metadata={"help": "attention pooling heads over the history (default {default})"})
    mask_blocks: int = field(default=2, metadata={"help": "MaskNet blocks (serial; default {default})"})
    id_embeddings: bool = field(default=True, metadata={
        "help": "user ID and interest ID embeddings (--no-id-embeddings: ablation)"})
    feature_crossing: bool = field(default=True, metadata={
        "help": "MaskNet instance-guided masks (--no-feature-crossing: an MLP of the same depth instead)"})
    id_dropout: float = field(default=0.3, metadata={"help": "dropout on ID embeddings (default {default})"})
    user_id_buckets: int = field(default=0, metadata={
        "help": "hash user ids into this many rows (0 = one row per training user + an unknown row; default {default})"})
    condition_rate: float = field(default=0.3, metadata={
        "help": "share of training examples conditioned on their pin's interest (default {default})"})
    epochs: float = field(default=4.0, metadata={"help": "epochs over the training events (default {default})"})
    batch_size: int = field(default=512, metadata={"help": "examples per step (default {default})"})
    lr: float = field(default=2e-3, metadata={"help": "AdamW learning rate (default {default})"})
    id_lr: float = field(default=1e-2, metadata={"help": "learning rate of the ID tables (SparseAdam; default {default})"})
    weight_decay: float = field(default=0.01, metadata={"flag": None, "help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.05, metadata={"flag": None, "help": "share of the schedule warming up"})
    temperature: float = field(default=0.05, metadata={"help": "softmax temperature or its init (default {default})"})
    learn_temperature: bool = field(default=False, metadata={"help": "learn log(temperature)"})
    random_negatives: int = field(default=1024, metadata={
        "help": "uniform random pins per step as extra negatives (default {default})"})
    max_minutes: float | None = field(default=None, metadata={"help": "time budget; stops cleanly when spent"})
    max_steps: int | None = field(default=None, metadata={"help": "step budget"})
    threads: int = field(default=2, metadata={"help": "torch threads (default {default})"})
    seed: int = field(default=0, metadata={"help": "random seed (default {default})"})
    log_every: int = field(default=20, metadata={"flag": None, "help": "steps per train_log.jsonl record"})
    progress: bool = field(default=True, metadata={"flag": None, "help": "show a progress bar"})

    def __post_init__(self) -> None:
        check_ranges(self, positive=("eval_days", "history", "hidden", "id_dim", "heads", "epochs", "batch_size",
                                     "lr", "id_lr", "temperature", "threads"),
                     probabilities=("id_dropout", "condition_rate"),
                     non_negative=("mask_blocks", "random_negatives", "user_id_buckets"))
        if self.batch_size < 2:
            raise ValueError(f"--batch-size must be >= 2 (in-batch negatives), got {self.batch_size}")
        if self.id_dropout >= 1.0:
            raise ValueError(f"--id-dropout must be < 1, got {self.id_dropout}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"--max-steps must be >= 1, got {self.max_steps}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"--max-minutes must be > 0, got {self.max_minutes}")
        if self.split_time is not None:
            from encoders.homefeed.events import parse_time

            parse_time(self.split_time, "--split-time")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HomefeedTrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


#: Where ``searchsage homefeed train --ablations`` puts the variants, under the run directory.
ABLATIONS_DIR = "ablations"
#: Ablation variants: name → the training options that make them (``RUN/ablations/<name>/``).
ABLATIONS: dict[str, dict[str, bool]] = {
    "no_id_embeddings": {"id_embeddings": False},
    "no_feature_crossing": {"feature_crossing": False},
}


@dataclass
class HomefeedEvalConfig:
    """Options of ``searchsage homefeed evaluate``."""

    data: str = field(metadata={"help": "homefeed dataset directory"})
    run: str = field(metadata={"help": "run directory of `searchsage homefeed train` (ablations in RUN/ablations/)"})
    out: str = field(metadata={"help": "directory for eval_report.json and eval_report.md"})
    corpus_size: int | None = field(default=None, metadata={
        "help": "pins in the decayed/count corpora (default: a third of the pins)"})
    half_life_days: float = field(default=7.0, metadata={
        "help": "half-life of the time-decayed engagement score (corpus and popularity; default {default})"})
    max_users: int | None = field(default=None, metadata={"help": "evaluate a seeded sample of this many users"})
    bootstrap_reps: int = field(default=1000, metadata={"help": "paired bootstrap replicates (default {default})"})
    conditional: bool = field(default=True, metadata={"help": "also measure interest-conditioned retrieval"})
    threads: int = field(default=2, metadata={"help": "torch threads (default {default})"})
    seed: int = field(default=0, metadata={"help": "seed of the user sample and the bootstrap (default {default})"})
    progress: bool = field(default=True, metadata={"flag": None, "help": "show progress bars"})

    def __post_init__(self) -> None:
        check_ranges(self, positive=("half_life_days", "bootstrap_reps", "threads"))
        for name in ("corpus_size", "max_users"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
