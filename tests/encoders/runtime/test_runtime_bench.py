"""``bench/encoder.py --quick`` on the tiny model: every engine and batch size measured, files written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_bench_encoder_quick(tiny_bert_dir: Path, tmp_path: Path) -> None:
    queries = tmp_path / "train.csv"
    queries.write_text("search_term\n" + "\n".join(f"red chair {i}" for i in range(80)) + "\n", encoding="latin-1")
    r = subprocess.run(
        [sys.executable, str(REPO / "bench" / "encoder.py"), "--quick", "--base-model", str(tiny_bert_dir),
         "--queries", str(queries), "--batch-sizes", "1", "8", "--out-dir", str(tmp_path / "out")],
        capture_output=True, text=True, timeout=180, cwd=REPO,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    res = json.loads((tmp_path / "out" / "encoder.json").read_text())
    assert res["config"]["n"] == 64 and res["config"]["queries"].startswith("homedepot:")
    assert set(res["engines"]) == {"torch eager", "torch eager, runtime batching", "onnxruntime fp32", "onnxruntime int8"}
    for e in res["engines"].values():
        assert set(e["qps"]) == {"1", "8"} and all(v > 0 for v in e["qps"].values())
        assert 0 < e["p50_ms"] <= e["p99_ms"]
    assert res["quality"]["fp32_max_abs_vs_torch"] < 1e-4
    assert res["quality"]["batch_vs_single"]["int8"]["cos_min"] > 0.999999
    md = (tmp_path / "out" / "encoder.md").read_text()
    assert "| onnxruntime int8 |" in md and "q/s @ batch 8" in md
