"""bench/pins_embed.py at tiny size: every runtime measured, the figures make sense, the source untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from encoders.export.config import ParityThresholds

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_run_writes_sensible_figures(tmp_path: Path, tiny_bert_dir: Path) -> None:
    src = tmp_path / "src.parquet"
    texts = [f"red oak chair {i} with a {'large ' * (i % 7)}brass lamp" for i in range(60)]
    pq.write_table(pa.table({"pin_id": [f"p{i}" for i in range(60)], "text": texts}), src)
    before = src.read_bytes()
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pins_embed.py"), "--pins", str(src), "--n", "40", "--repeats", "2",
         "--threads", "1", "--base-model", str(tiny_bert_dir), "--work", str(tmp_path / "work"),
         "--out-dir", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((out / "pins_embed.json").read_text())
    assert src.read_bytes() == before  # the source is only read
    assert res["n_pins"] == 40 and res["repeats"] == 2 and res["threads"] == 1
    assert set(res["runtimes"]) == {"torch", "onnx-fp32", "onnx-int8"}
    gate = ParityThresholds()
    for r in res["runtimes"].values():
        assert len(r["pins_per_s_all"]) == 2 and r["pins_per_s"] == max(r["pins_per_s_all"]) > 0
        assert r["pins_per_s_median"] <= r["pins_per_s"]
        assert abs(r["encode_s_best"] * r["pins_per_s"] - 40) < 1e-6
        assert r["wall_s_best"] >= r["encode_s_best"]  # a call does more than encode
        assert r["x_torch"] == r["pins_per_s"] / res["runtimes"]["torch"]["pins_per_s"]
    assert res["runtimes"]["torch"]["max_abs_vs_torch"] == 0.0
    assert res["runtimes"]["onnx-fp32"]["max_abs_vs_torch"] <= gate.fp32_max_abs
    assert res["runtimes"]["onnx-int8"]["cos_min_vs_torch"] >= gate.int8_cos_min
    assert res["runtimes"]["onnx-int8"]["onnx_model_version"].endswith("+int8")
    ex = res["export"]
    assert ex["exported"] is True and res["int8_sample"]["n"] == 40
    assert ex["setup_s"] > 0 and abs(ex["setup_s"] + ex["first_encode_s"] - ex["wall_s"]) < 1e-6
    assert res["tokens"]["max"] <= res["max_length"]
    md = (out / "pins_embed.md").read_text()
    assert "| onnx-int8 |" in md and "pins_embed.py" in md
