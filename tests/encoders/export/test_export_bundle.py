"""Export of a tiny tower: files, manifest, parity figures, failing thresholds, pin tower semantics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from encoders.export.bundle import export_tower, load_run_tower
from encoders.export.config import ExportOptions
from encoders.export.manifest import content_version
from encoders.export.onnx_export import build_pin_tower
from encoders.export.parity import ParityError, ParityThresholds
from encoders.runtime import BundleEncoder, BundleManifest

FILES = ("model.onnx", "model.int8.onnx", "tokenizer.json", "tokenizer_config.json", "manifest.json")


def test_bundle_layout_and_manifest(tiny_onnx_bundle: Path) -> None:
    assert json.loads((tiny_onnx_bundle / "eval_report.json").read_text()) == {"recall@10": 0.5}
    for kind, max_len in (("query", 16), ("pin", 64)):
        d = tiny_onnx_bundle / kind
        for f in FILES:
            assert (d / f).is_file(), f"{d / f} missing"
        m = BundleManifest.read(d)
        assert (m.kind, m.dim, m.max_length, m.pooling, m.normalize) == (kind, 32, max_len, "mean", True)
        assert m.model_version.startswith(f"{kind}-") and len(m.model_version) == len(kind) + 13
        assert m.text_normalization == ("encoders.normalize.normalize_query" if kind == "query" else None)
        p = m.parity
        assert p["passed"] and p["tokenizer_match"] and p["n_texts"] > 40
        assert p["fp32_max_abs_diff"] <= 1e-4
        assert p["int8_cos_mean"] >= 0.99 and p["int8_cos_min"] >= 0.97
        assert set(p["batch_vs_single"]) == {"fp32", "int8"}
        graph = onnx.load(str(d / "model.onnx")).graph
        assert [o.name for o in graph.output] == ["sentence_embedding"]
        assert [i.name for i in graph.input] == ["input_ids", "attention_mask"]
        int8_ops = {n.op_type for n in onnx.load(str(d / "model.int8.onnx")).graph.node}
        assert "MatMulIntegerToFloat" in int8_ops and "DynamicQuantizeLinear" not in int8_ops
        assert p["batch_vs_single"]["int8"]["cos_min"] > 1 - 1e-6  # per-token int8 is batch-invariant
        assert m.recommended_variant["materialize"] == m.recommended_variant["live"] == "int8"
        assert m.variant_versions == {"fp32": m.model_version, "int8": m.model_version + "+int8"}


def test_query_and_pin_versions_differ(tiny_onnx_bundle: Path) -> None:
    q = BundleManifest.read(tiny_onnx_bundle / "query").model_version
    p = BundleManifest.read(tiny_onnx_bundle / "pin").model_version
    assert q != p


def test_content_version_tracks_bytes_and_settings(tmp_path: Path) -> None:
    f = tmp_path / "model.onnx"
    f.write_bytes(b"abc")
    v1 = content_version("query", [f], {"dim": 32})
    assert v1 == content_version("query", [f], {"dim": 32})
    assert v1 != content_version("query", [f], {"dim": 64})
    f.write_bytes(b"abd")
    assert v1 != content_version("query", [f], {"dim": 32})


def test_pin_tower_is_mean_pooled_l2_normalised_base_model(tiny_bert_dir: Path, tiny_onnx_bundle: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    texts = ["red oak table", "Brass DOOR hook", "x"]
    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    model = AutoModel.from_pretrained(str(tiny_bert_dir)).eval()
    b = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        h = model(**{k: b[k] for k in ("input_ids", "attention_mask")}).last_hidden_state
    m = b["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1), dim=-1).numpy()
    got = BundleEncoder(tiny_onnx_bundle, kind="pin").encode(texts)  # pins: no query normalisation
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_violated_threshold_raises(tiny_bert_dir: Path, tmp_path: Path) -> None:
    tower = build_pin_tower(tiny_bert_dir, max_length=16)
    strict = ParityThresholds(fp32_max_abs=1e-4, int8_cos_mean=1.0 + 1e-9, int8_cos_min=0.0)
    with pytest.raises(ParityError, match="int8 mean cosine"):
        export_tower(tower, "pin", tmp_path / "pin", ExportOptions(progress=False, fuse=False, thresholds=strict,
                                                                   parity_texts=["a", "red chair"]))
    # the failing figures stay inspectable in the manifest
    assert BundleManifest.read(tmp_path / "pin").parity["passed"] is False


def test_load_run_tower_names_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"tower_config\.json"):
        load_run_tower(tmp_path)
