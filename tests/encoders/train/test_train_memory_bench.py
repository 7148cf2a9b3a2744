"""bench/train_memory.py at tiny size: the figures make sense and streaming grows less than in memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_tiny_run_reports_sensible_memory_figures(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "train_memory.py"), "--pairs", "5000", "--scale", "10", "--pins", "2000",
         "--stream-buffer", "1024", "--sample-pairs", "500", "--row-group", "1000", "--work", str(tmp_path / "work"),
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "train_memory.json").read_text())
    runs = {(r["size"], r["pipeline"]): r for r in report["runs"]}
    assert set(runs) == {(s, p) for s in ("1x", "10x") for p in ("in_memory", "stream")}
    for r in runs.values():
        assert r["peak_rss_mb"] > r["rss_before_mb"] > 0 and r["pipeline_rss_mb"] > 0 and r["batches"] > 0
        assert r["rows"] == r["batches"] * 128 and r["wall_s"] > 0
    for p in ("in_memory", "stream"):  # the same pairs behind both pipelines, ~10x more at 10x
        assert 9 <= runs[("10x", p)]["pairs"] / runs[("1x", p)]["pairs"] <= 11
    assert runs[("10x", "stream")]["pairs"] == runs[("10x", "in_memory")]["pairs"]
    growth = report["growth_ratio"]
    assert growth["stream"] < growth["in_memory"], growth
    assert runs[("10x", "stream")]["pipeline_rss_mb"] < runs[("10x", "in_memory")]["pipeline_rss_mb"]
    assert "| 10x | stream |" in (tmp_path / "train_memory.md").read_text()
