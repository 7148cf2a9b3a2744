"""The options of ``searchsage export``, each declared once (imports nothing heavy, so the CLI can
build its parser without torch / onnx).

:class:`ExportOptions` holds the knobs of one export, with :class:`QuantizeConfig` and
:class:`ParityThresholds` inside it; fields that are flags carry their help in ``metadata`` and
``searchsage export`` generates its flags from them (:func:`encoders.cli_support.add_config_options`:
``--no-fuse``, ``--reduce-range``, ``--fp32-max-abs``, ``--int8-cos-mean``, ``--int8-cos-min``,
``--pin-max-length``). :data:`PIN_MAX_LENGTH` is the pin tower's token limit and
:data:`DEFAULT_OPSET` the ONNX opset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

#: Token limit of the frozen pin tower.
PIN_MAX_LENGTH = 64
#: ONNX opset of the exported graphs.
DEFAULT_OPSET = 17

#: Not a flag of ``searchsage export``.
_NO_FLAG = {"flag": None}


@dataclass
class ParityThresholds:
    """Limits an export must meet: fp32 max |onnx − torch|, int8 cosine to fp32 (mean and min)."""

    fp32_max_abs: float = field(default=1e-4, metadata={"help": "max |onnx fp32 - torch| (default {default})"})
    int8_cos_mean: float = field(default=0.99, metadata={"help": "min mean cosine int8 vs fp32 (default {default})"})
    int8_cos_min: float = field(default=0.97, metadata={"help": "min row cosine int8 vs fp32 (default {default})"})


@dataclass
class QuantizeConfig:
    """How the int8 variant is made.

    ``per_channel``: one weight scale per output column; ``reduce_range``: 7-bit weights (avoids
    int16 saturation in the u8s8 kernels on CPUs without VNNI, costs a little precision);
    ``op_types``: which operators get int8 weights; ``activations``: ``"per_token"`` (one scale per
    token row, batch-invariant) or ``"per_tensor"`` (onnxruntime's stock dynamic quantisation: one
    scale per activation tensor, so results depend on what else is in the batch).
    """

    per_channel: bool = field(default=True, metadata=_NO_FLAG)
    reduce_range: bool = field(default=False, metadata={"help": "7-bit int8 weights (older CPUs without VNNI)"})
    op_types: tuple[str, ...] = field(default=("MatMul",), metadata=_NO_FLAG)
    activations: Literal["per_token", "per_tensor"] = field(default="per_token", metadata=_NO_FLAG)


@dataclass
class ExportOptions:
    """Knobs of one export. ``fuse``: apply onnxruntime's BERT fusions to the fp32 graph before
    quantising; ``parity_texts``: override the fixed check set (``None`` =
    :data:`encoders.export.parity.PARITY_TEXTS`); ``progress``: show progress bars."""

    opset: int = field(default=DEFAULT_OPSET, metadata=_NO_FLAG)
    fuse: bool = field(default=True, metadata={"flag": "--no-fuse", "help": "skip onnxruntime's offline BERT fusions"})
    quantize: QuantizeConfig = field(default_factory=QuantizeConfig)
    thresholds: ParityThresholds = field(default_factory=ParityThresholds)
    parity_texts: list[str] | None = field(default=None, metadata=_NO_FLAG)
    pin_max_length: int = field(default=PIN_MAX_LENGTH,
                                metadata={"help": "token limit of the pin tower (default {default})"})
    progress: bool = field(default=True, metadata=_NO_FLAG)
