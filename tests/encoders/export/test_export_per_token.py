"""Per-token int8 activations: batch-invariant, unlike onnxruntime's per-tensor dynamic quantisation."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from encoders.export.parity import row_cosine
from encoders.export.per_token import per_token_activations
from encoders.export.quantize import QuantizeConfig, quantize_int8
from encoders.runtime import BundleEncoder

TEXTS = ["red chair", "a", "oak table lamp with brass hook and steel rack for the kitchen wall", "",
         "led bulb", "zzzz qqqq 1234 5678"]


def _tower_copy(src: Path, dst: Path, activations: str) -> Path:
    dst.mkdir()
    for f in ("model.onnx", "tokenizer.json", "manifest.json"):
        shutil.copy(src / f, dst / f)
    quantize_int8(dst / "model.onnx", dst / "model.int8.onnx", QuantizeConfig(activations=activations))  # type: ignore[arg-type]
    return dst


def _batch_vs_single(d: Path) -> np.ndarray:
    enc = BundleEncoder(d, "int8", batch_size=len(TEXTS), sort_by_length=False, max_tokens=None)
    batched = enc.encode(TEXTS)
    single = np.concatenate([enc.encode([t]) for t in TEXTS])
    return row_cosine(batched, single)


def test_per_token_is_batch_invariant_per_tensor_is_not(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    src = tiny_onnx_bundle / "query"
    per_tensor = _batch_vs_single(_tower_copy(src, tmp_path / "pt", "per_tensor"))
    per_token = _batch_vs_single(_tower_copy(src, tmp_path / "tok", "per_token"))
    assert per_token.min() > 1 - 1e-6
    assert per_tensor.min() < per_token.min() and per_tensor.min() < 1 - 1e-6
    ref = BundleEncoder(src, "fp32").encode(TEXTS)
    assert row_cosine(ref, BundleEncoder(tmp_path / "tok", "int8").encode(TEXTS)).min() > 0.99


def test_rewrite_replaces_every_dynamic_quantizer(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    d = _tower_copy(tiny_onnx_bundle / "query", tmp_path / "pt", "per_tensor")
    model = onnx.load(str(d / "model.int8.onnx"))
    n_dql = sum(n.op_type == "DynamicQuantizeLinear" for n in model.graph.node)
    n_mmi = sum(n.op_type == "MatMulInteger" for n in model.graph.node)
    model, n = per_token_activations(model)
    ops = [n.op_type for n in model.graph.node]
    assert n == n_dql > 0
    assert "DynamicQuantizeLinear" not in ops and "MatMulInteger" not in ops
    assert ops.count("MatMulIntegerToFloat") == n_mmi and ops.count("QuantizeLinear") == n_dql
    onnx.checker.check_model(model)


def test_rewrite_refuses_unknown_consumers(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    d = _tower_copy(tiny_onnx_bundle / "query", tmp_path / "pt", "per_tensor")
    model = onnx.load(str(d / "model.int8.onnx"))
    mmi = next(n for n in model.graph.node if n.op_type == "MatMulInteger")
    model.graph.node.append(onnx.helper.make_node("Identity", [mmi.output[0]], ["extra_consumer"]))
    with pytest.raises(ValueError, match="expected MatMulInteger→Cast→Mul"):
        per_token_activations(model)
