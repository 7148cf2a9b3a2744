"""Export a tower (``QueryTower`` or the frozen pin tower) to an fp32 ONNX graph.

The graph takes ``input_ids`` and ``attention_mask`` (both ``(N, L)`` int64, dynamic N and L) and
returns ``sentence_embedding`` ``(N, D)`` float32. The legacy TorchScript exporter is used
(``dynamo=False``): the dynamo exporter needs onnxscript and writes external data files.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from encoders.export.config import DEFAULT_OPSET, PIN_MAX_LENGTH
from encoders.model.tower import QueryTower, TowerConfig
from encoders.runtime.manifest import INPUT_NAMES, OUTPUT_NAME


def build_pin_tower(base_model: str | Path, max_length: int = PIN_MAX_LENGTH) -> QueryTower:
    """The frozen pin tower stand-in: base model → mean pooling → identity readout → L2 norm."""
    config = TowerConfig(
        base_model=str(base_model), out_dim=None, pooling="mean", normalize=True,
        max_length=max_length, readout_init="identity",
    )
    return QueryTower(config).eval()


def _dummy_inputs(vocab_size: int, length: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows, the second padded, so the exporter sees a real attention mask ``(2, length)``."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, max(6, vocab_size), (2, length), generator=g, dtype=torch.int64)
    mask = torch.ones((2, length), dtype=torch.int64)
    mask[1, length // 2 :] = 0
    ids[1, length // 2 :] = 0
    return ids, mask


def export_onnx(model: nn.Module, path: str | Path, vocab_size: int, opset: int = DEFAULT_OPSET) -> Path:
    """Write ``model(input_ids, attention_mask) -> (N, D)`` to ``path`` as one self-contained fp32 ONNX file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    ids, mask = _dummy_inputs(vocab_size)
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"},
            OUTPUT_NAME: {0: "batch"}}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (ids, mask), str(path), input_names=list(INPUT_NAMES), output_names=[OUTPUT_NAME],
            dynamic_axes=axes, opset_version=opset, do_constant_folding=True, dynamo=False,
        )
    return path
