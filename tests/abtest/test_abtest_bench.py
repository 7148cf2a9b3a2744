"""bench/abtest.py --quick runs end to end and reports time and peak memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_quick(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "abtest.py"), "--quick", "--results-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "abtest_quick.json").read_text())
    assert report["rows"]["impressions"] > 100_000
    assert 0 < report["child"]["seconds_total"] < 60 and 50 < report["child"]["peak_rss_mb"] < 2048
    assert report["child"]["srm_passed"] is True and report["child"]["engine"] == "numpy"
    assert report["child"]["cpu_seconds"] > 0 and report["load_avg_1m_start"] >= 0
    assert "| impressions |" in (tmp_path / "abtest_quick.md").read_text()
