"""The embedding arm driven by a real exported bundle (onnxruntime, no torch in the simulator)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.cli.main import main


@pytest.mark.slow  # the shared tiny_onnx_bundle fixture exports with torch (~30 s once per session)
def test_simulate_with_treatment_bundle(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    from encoders.data.synthetic import generate_synthetic
    from encoders.runtime import BundleEncoder

    paths = generate_synthetic(tmp_path / "data", n_pins=300, n_queries=60, seed=1, judgments="all")
    pins = pq.read_table(paths.pins)
    emb = BundleEncoder(tiny_onnx_bundle, kind="pin").encode(pins.column("text").to_pylist())
    pq.write_table(pins.append_column("embedding", pa.array(list(emb), pa.list_(pa.float32()))), paths.pins)
    logs = tmp_path / "logs"
    assert main(["abtest", "simulate", "--data", str(paths.root), "--out", str(logs), "--users", "300",
                 "--days", "2", "--pre-days", "1", "--treatment-bundle", str(tiny_onnx_bundle)]) == 0
    served = pq.read_table(logs / "served.parquet").to_pandas()
    ctrl = served[served.arm == "control"].set_index("query").pin_ids
    treat = served[served.arm == "treatment"].set_index("query").pin_ids
    assert (treat.map(len) == 20).all()  # dense retrieval always fills the page
    assert sum(list(ctrl[q]) != list(treat[q]) for q in treat.index) > len(treat) // 2
    assert "tiny" in (logs / "simulation.json").read_text() or "bundle" in (logs / "simulation.json").read_text()
