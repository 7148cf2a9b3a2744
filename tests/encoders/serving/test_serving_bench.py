"""``bench/serving.py --quick`` runs end to end on the tiny bundle and writes its reports."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def load_bench():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("bench_serving", ROOT / "bench" / "serving.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_serving"] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


def test_quick_benchmark_writes_json_and_markdown(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    bench = load_bench()
    report = bench.main(["--bundle", str(tiny_onnx_bundle), "--quick", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "serving.json").read_text())
    md = (tmp_path / "serving.md").read_text()
    assert data["offline_qps"] > 0 and len(data["offline_qps_runs"]) == 2
    rows = {(r["mode"], r["kind"], r["concurrency"]) for r in data["results"]}
    modes = ("batched", "batched-binary", "unbatched")
    assert rows == {(m, "closed", c) for m in modes for c in (1, 8)} | {(m, "open", 8) for m in modes}
    for r in data["results"]:
        assert r["requests"] > 0 and r["errors"] == 0 and r["qps"] > 0 and r["p99_ms"] >= r["p50_ms"] > 0
    unbatched = [r for r in data["results"] if r["mode"] == "unbatched"]
    assert all(r["mean_batch"] == 1.0 for r in unbatched)
    assert set(data["checks"]) >= {"share_of_offline", "speedup_vs_unbatched", "open_loop_p99_ms",
                                   "binary_share_of_offline", "binary_open_loop_p99_ms"}
    assert "| batched | concurrency 8 |" in md and "| batched-binary | concurrency 8 |" in md and "Reproduce:" in md
    assert report.offline_qps == data["offline_qps"]
    # where the time goes, per batched mode at the top concurrency: figures that hang together
    profiles = {p["mode"]: p for p in data["profiles"]}
    assert set(profiles) == {"batched", "batched-binary"}
    for mode, p in profiles.items():
        row = next(r for r in data["results"] if r["mode"] == mode and r["kind"] == "closed" and r["concurrency"] == 8)
        assert p["queries"] == row["requests"] and p["mean_batch"] == row["mean_batch"]
        f, ms = p["factors"], p["per_thousand_ms"]
        assert 0 < f["encoder_busy_fraction"] <= 1.02  # one encoder worker: busy at most all the wall time
        assert ms["service_wall"] >= 0.98 * ms["encoder_in_service"] > 0
        assert f["batch_size_penalty"] > 0 and p["offline_at_batch_qps"] > 0 and p["client_cores"] > 0
        product = f["batch_size_penalty"] * f["encoder_in_service_vs_offline_at_batch"] * f["encoder_busy_fraction"]
        assert abs(product - f["served_over_offline"]) <= 0.02 * f["served_over_offline"] + 0.002
        assert f"Where the time goes, mode {mode} at concurrency 8" in md
    # every server the benchmark started is gone (batched and batched-binary share one)
    left = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in cmd and str(tiny_onnx_bundle).encode() in cmd:
            left.append(proc.name)
    assert not left, f"benchmark servers left running: {left}"


def test_synthetic_queries_are_short_and_mostly_distinct() -> None:
    bench = load_bench()
    qs = bench.make_queries(2000)
    assert len(set(qs)) > 1000 and max(len(q.split()) for q in qs) <= 5
    assert qs == bench.make_queries(2000)  # seeded
