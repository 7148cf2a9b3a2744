"""The Feast UDFs with pin-space feedback switched on by environment (materialised == live)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from encoders.data.schema import PINS, write_table
from encoders.featurestore import udfs
from encoders.runtime import BundleEncoder
from encoders.runtime.pin_feedback import PinFeedback, PinFeedbackIndex

QUERIES = ["Angle Bracket", "red chair", "oak table", "garden hose"]


@pytest.fixture
def pins_parquet(tmp_path: Path, tiny_onnx_bundle: Path) -> tuple[Path, np.ndarray]:
    dim = BundleEncoder(tiny_onnx_bundle).dim
    pins = np.random.default_rng(7).normal(size=(150, dim)).astype(np.float32)
    path = write_table(pa.table({"pin_id": [f"p{i}" for i in range(150)], "text": ["t"] * 150,
                                 "embedding": pa.array([r.tolist() for r in pins], pa.list_(pa.float32()))}),
                       tmp_path / "pins.parquet", PINS)
    return Path(path), pins


def test_materialised_and_live_query_embeddings_get_the_same_feedback(
    tiny_onnx_bundle: Path, pins_parquet: tuple[Path, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, pins = pins_parquet
    monkeypatch.setenv(udfs.BUNDLE_ENV, str(tiny_onnx_bundle))
    monkeypatch.setenv(udfs.VARIANT_ENV, "fp32")
    monkeypatch.setenv(udfs.PIN_FEEDBACK_ENV, str(path))
    monkeypatch.setenv(udfs.PRF_K_ENV, "3")
    monkeypatch.setenv(udfs.PRF_WEIGHT_ENV, "0.4")
    plain = BundleEncoder(tiny_onnx_bundle, variant="fp32")
    index = PinFeedbackIndex(PinFeedback(k=3, weight=0.4), pins)

    out = udfs.embed_queries(pd.DataFrame({"query": QUERIES}))
    keys = out["query"].tolist()
    np.testing.assert_allclose(np.stack(out["embedding"]), index.apply(plain.encode(keys)), atol=1e-5)
    assert set(out["model_version"]) == {f"{plain.model_version}+{index.version_tag}"}

    live = udfs.live_query_embedding(pd.DataFrame({"query_text": keys}))
    np.testing.assert_allclose(np.stack(live["query_vector"]), np.stack(out["embedding"]), atol=1e-5)
    assert set(live["query_vector_model_version"]) == set(out["model_version"])

    pins_out = udfs.embed_pin_rows(pd.DataFrame({"pin_id": ["a"], "text": ["oak table"]}))  # pins untouched
    np.testing.assert_allclose(pins_out["embedding"][0], BundleEncoder(tiny_onnx_bundle, kind="pin").encode(["oak table"])[0],
                               atol=1e-5)
    assert pins_out["model_version"][0] == BundleEncoder(tiny_onnx_bundle, kind="pin").model_version


def test_bad_feedback_settings_name_the_variable(
    tiny_onnx_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(udfs.BUNDLE_ENV, str(tiny_onnx_bundle))
    monkeypatch.setenv(udfs.PIN_FEEDBACK_ENV, str(tmp_path / "nope.parquet"))
    with pytest.raises(ValueError, match=r"SEARCHSAGE_PIN_FEEDBACK=.*nope\.parquet.*file not found"):
        udfs.get_encoder("query")
    monkeypatch.setenv(udfs.PRF_K_ENV, "five")
    with pytest.raises(ValueError, match="SEARCHSAGE_PRF_K must be an integer"):
        udfs.get_encoder("query")
