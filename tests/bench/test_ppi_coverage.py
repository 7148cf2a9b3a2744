"""bench/ppi_coverage.py at tiny size: the figures make sense, and the vectorised nDCG is the project's."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from encoders.eval.ranking_metrics import ndcg_at_k

ROOT = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("ppi_coverage_bench", ROOT / "bench" / "ppi_coverage.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_vectorised_ndcg_matches_ranking_metrics() -> None:
    bench = _bench()
    rng = np.random.default_rng(0)
    grades = rng.integers(0, 4, size=(50, 16)).astype(float)
    shown = np.argsort(rng.random((50, 16)), axis=1)[:, :10]
    pool = rng.random((50, 16)) < 0.8
    got = bench.ndcg(grades, shown, pool)
    for i in range(50):
        want = ndcg_at_k(grades[i, shown[i]], grades[i, pool[i]], k=10)
        assert (np.isnan(want) and np.isnan(got[i])) or got[i] == pytest.approx(want, abs=1e-12)


def test_tiny_run_writes_sensible_figures(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "ppi_coverage.py"), "--experiments", "40",
                           "--queries", "800", "--seed", "1", "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "ppi_coverage.json").read_text())
    est = report["estimators"]
    for e in ("ppi", "judged_only", "model_only", "unjudged_zero"):
        assert 0.0 <= est[e]["coverage"] <= 1.0 and est[e]["mean_width"] > 0
    assert est["ppi"]["mean_width"] < est["judged_only"]["mean_width"]
    assert est["ppi"]["coverage"] >= 0.8 and est["judged_only"]["coverage"] >= 0.8
    # the treatment surfaces unjudged (but relevant) results: today's number is far off, and so is the biased model
    assert est["unjudged_zero"]["coverage"] < 0.2 and est["unjudged_zero"]["bias"] < -0.1
    assert est["model_only"]["coverage"] < 0.5
    assert abs(est["ppi"]["bias"]) < 0.01 and report["true_delta"] > 0
    assert 0.6 < report["model_true_corr_ndcg"] < 0.95 and 0 <= report["mean_lambda"] <= 1
    assert "| ppi |" in (tmp_path / "ppi_coverage.md").read_text()
