"""BundleEncoder on a tiny bundle: shapes, edge cases, normalisation, mismatch errors, no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoders.runtime import BundleEncoder, BundleError


@pytest.fixture(scope="module")
def enc(tiny_onnx_bundle: Path) -> BundleEncoder:
    return BundleEncoder(tiny_onnx_bundle, variant="fp32", threads=1, batch_size=4)


def test_shape_dtype_and_properties(enc: BundleEncoder, tiny_onnx_bundle: Path) -> None:
    out = enc.encode(["red chair", "oak table", "", "led light bulb", "a", "sink faucet"])
    assert out.shape == (6, 32) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    assert enc.dim == 32 and enc.kind == "query"
    assert enc.model_version == json.loads((tiny_onnx_bundle / "query/manifest.json").read_text())["model_version"]
    assert enc.manifest.max_length == 16
    assert enc.encode([]).shape == (0, 32)


def test_rows_keep_input_order_across_batches(enc: BundleEncoder) -> None:
    texts = ["red chair", "a much longer query about a steel garden hose rack", "x", "oak", "blue tile paint brush"]
    batched = enc.encode(texts)  # batch_size 4, sorted by length internally
    single = np.concatenate([enc.encode([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_query_normalisation_matches_training(enc: BundleEncoder) -> None:
    a, b = enc.encode(["  LED   Light\tBULB ", "led light bulb"])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_long_text_is_truncated_to_max_length(enc: BundleEncoder) -> None:
    head = "red chair oak table lamp door window floor tile paint brush drill saw hammer nail screw"
    a, b = enc.encode([head + " bolt" * 500, head + " sink" * 700])  # differ only after token 16
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_non_string_names_position(enc: BundleEncoder) -> None:
    with pytest.raises(TypeError, match="position 2"):
        enc.encode(["ok", "fine", None, "x"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="single string"):
        enc.encode("red chair")


def test_pin_tower_skips_query_normalisation_but_checks_types(tiny_onnx_bundle: Path) -> None:
    pins = BundleEncoder(tiny_onnx_bundle / "pin", variant="int8")
    assert pins.kind == "pin" and pins.manifest.max_length == 64
    assert pins.encode(["oak shelf", "", "z" * 5000]).shape == (3, 32)
    with pytest.raises(TypeError, match="position 1"):
        pins.encode(["oak", 3])  # type: ignore[list-item]


def test_expectations_and_bad_paths(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="D=32 does not match the expected D=384"):
        BundleEncoder(tiny_onnx_bundle, expect_dim=384)
    with pytest.raises(BundleError, match="model_version"):
        BundleEncoder(tiny_onnx_bundle, expect_version="query-000000000000")
    ok = BundleEncoder(tiny_onnx_bundle, expect_dim=32,
                       expect_version=BundleEncoder(tiny_onnx_bundle).model_version)
    assert ok.dim == 32
    with pytest.raises(BundleError, match="'pin' tower, expected 'query'"):
        BundleEncoder(tiny_onnx_bundle / "pin", kind="query")
    with pytest.raises(BundleError, match="not a bundle"):
        BundleEncoder(tmp_path)
    with pytest.raises(ValueError, match="variant"):
        BundleEncoder(tiny_onnx_bundle, variant="fp16")


def test_int8_close_to_fp32(tiny_onnx_bundle: Path) -> None:
    texts = ["red chair", "oak table lamp", "garden hose", "white paint brush"]
    a = BundleEncoder(tiny_onnx_bundle, "fp32").encode(texts)
    b = BundleEncoder(tiny_onnx_bundle, "int8").encode(texts)
    cos = (a * b).sum(1)
    assert cos.min() > 0.97 and not np.array_equal(a, b)


def test_runtime_never_imports_torch(tiny_onnx_bundle: Path) -> None:
    code = (
        "import sys\n"
        "from encoders.runtime import BundleEncoder\n"
        "from encoders.runtime.stream import encode_file\n"
        f"e = BundleEncoder({str(tiny_onnx_bundle)!r}, variant='int8')\n"
        "assert e.encode(['red chair', '']).shape == (2, 32)\n"
        "bad = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "print('LOADED', bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "LOADED []" in r.stdout


def test_token_cap_splits_calls_without_changing_results(tiny_onnx_bundle: Path) -> None:
    texts = ["red chair", "oak table lamp with brass hook", "x", "blue tile", "garden hose rack", "", "sink"]
    capped = BundleEncoder(tiny_onnx_bundle, "int8", batch_size=4, max_tokens=12)
    rows = capped.tokenizer.encode(capped.prepare(texts))
    calls = capped._plan(np.argsort([len(r) for r in rows], kind="stable"), rows)
    assert sorted(int(i) for c in calls for i in c) == list(range(len(texts)))
    for c in calls:
        assert len(c) <= 4 and (len(c) == 1 or len(c) * max(len(rows[i]) for i in c) <= 12)
    assert len(calls) > 2
    whole = BundleEncoder(tiny_onnx_bundle, "int8", batch_size=64, max_tokens=None)
    np.testing.assert_allclose(capped.encode(texts), whole.encode(texts), atol=1e-6)
