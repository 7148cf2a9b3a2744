"""The options of ``searchsage encode`` (a file through a bundle into a Feast offline source), each
declared once: the default, help and checks of an option live on its :class:`EncodeConfig` field,
and the command's flags are generated from them (:func:`encoders.cli_support.add_config_options`).

The encoder's defaults (variant, threads, batch size) are :class:`~encoders.runtime.bundle.BundleEncoder`'s
and the streaming ones (chunk rows, CSV encoding) :func:`~encoders.runtime.stream.encode_file`'s,
which takes them from here; pin feedback's are :class:`~encoders.runtime.pin_feedback.PinFeedback`'s
(``--prf-k``/``--prf-weight`` are added by :func:`encoders.cli_support.add_pin_feedback_options`).
"""

from __future__ import annotations

import datetime as dt
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from encoders.runtime.bundle import BundleEncoder
from encoders.runtime.pin_feedback import PinFeedback

#: ``BundleEncoder``'s keyword defaults (``variant``, ``threads``, ``batch_size``, ...).
_ENCODER = {name: p.default for name, p in inspect.signature(BundleEncoder).parameters.items()}


@dataclass
class EncodeConfig:
    """What ``searchsage encode`` encodes and how; ``__post_init__`` parses ``event_timestamp`` (ISO
    text, naive = UTC) and checks the pin-feedback settings, with messages that name the flag."""

    bundle: Path = field(metadata={"help": "bundle directory (or one tower directory)"})
    kind: Literal["query", "pin"] = field(metadata={"help": "which tower to use"})
    input: Path = field(metadata={"help": "input .parquet or .csv"})
    out: Path = field(metadata={"help": "output .parquet"})
    column: str | None = field(default=None, metadata={
        "help": "text column (default: query for --kind query, text for pins)"})
    key_column: str | None = field(default=None, metadata={"help": "entity key column for pins (default pin_id)"})
    chunk_rows: int = field(default=50_000, metadata={"help": "rows per streamed chunk (default {default})"})
    variant: Literal["fp32", "int8"] = field(default=_ENCODER["variant"], metadata={
        "help": "model variant (default {default}, like BundleEncoder); use the same variant as live serving: int8 is "
        "batch-invariant and ~2x faster (docs/onnx.md)"})
    threads: int = field(default=_ENCODER["threads"], metadata={
        "help": "onnxruntime intra-op threads (default {default})"})
    batch_size: int = field(default=_ENCODER["batch_size"], metadata={
        "help": "rows per onnxruntime call (default {default})"})
    encoding: str = field(default="utf8", metadata={"help": "CSV text encoding (e.g. latin-1 for Home Depot)"})
    event_timestamp: dt.datetime | str | None = field(default=None, metadata={
        "help": "ISO timestamp for every row (default: now, UTC)"})
    expect_dim: int | None = field(default=None, metadata={"help": "fail unless the bundle's D equals this"})
    pin_feedback: Path | None = field(default=None, metadata={
        "help": "query bundles: refine each query embedding towards the mean of its top pins in this pins.parquet's "
        "`embedding` column (pin-space pseudo-relevance feedback; docs/training.md)", "metavar": "PINS_PARQUET"})
    prf_k: int = field(default=PinFeedback.k, metadata={"flag": None})
    prf_weight: float = field(default=PinFeedback.weight, metadata={"flag": None})
    progress: bool = field(default=True, metadata={"help": "hide the progress bar", "flag": "--no-progress"})

    def __post_init__(self) -> None:
        self.bundle, self.input, self.out = Path(self.bundle), Path(self.input), Path(self.out)
        if isinstance(self.event_timestamp, str):
            try:
                ts = dt.datetime.fromisoformat(self.event_timestamp)
            except ValueError:
                raise ValueError(f"--event-timestamp {self.event_timestamp!r} is not an ISO timestamp") from None
            self.event_timestamp = ts if ts.tzinfo is not None else ts.replace(tzinfo=dt.timezone.utc)
        if self.pin_feedback is not None:
            self.pin_feedback = Path(self.pin_feedback)
            if self.kind != "query":
                raise ValueError("--pin-feedback refines query embeddings; it needs --kind query")
            try:
                PinFeedback(k=self.prf_k, weight=self.prf_weight)
            except ValueError as exc:
                raise ValueError(f"--prf-k/--prf-weight: {exc}") from None
