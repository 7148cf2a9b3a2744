"""Simulator + aggregation + analysis end to end (through the CLI), effect and SRM detection."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.cli.main import main


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic dataset with judgments for every query and (random) pin embeddings."""
    from encoders.data.synthetic import generate_synthetic

    paths = generate_synthetic(tmp_path_factory.mktemp("data"), n_pins=600, n_queries=120, seed=0, judgments="all")
    pins = pq.read_table(paths.pins)
    emb = np.random.default_rng(0).normal(size=(pins.num_rows, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    pq.write_table(pins.append_column("embedding", pa.array(list(emb), pa.list_(pa.float32()))), paths.pins)
    return paths.root


@pytest.fixture(scope="module")
def simulated(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "logs"
    assert main(["abtest", "simulate", "--data", str(dataset), "--out", str(out), "--users", "1500", "--days", "4",
                 "--pre-days", "3", "--treatment-strategy", "blend"]) == 0
    return out


def test_simulate_writes_production_logs(simulated: Path) -> None:
    for table in ("exposures", "impressions", "clicks", "searches"):
        assert list((simulated / table).glob("*.parquet")), table
    served = pq.read_table(simulated / "served.parquet").to_pandas()
    assert set(served.arm) == {"control", "treatment"}
    clicks = pq.read_table(simulated / "clicks").to_pandas()
    imps = pq.read_table(simulated / "impressions").to_pandas()
    assert (clicks.dwell_s > 0).all() and 0 < len(clicks) < len(imps)
    # position bias: the top result is clicked more often per impression than the 5th
    ctr = clicks.position.value_counts() / imps.position.value_counts()
    assert ctr[0] > ctr[4]


def test_analyze_end_to_end(simulated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["abtest", "analyze", str(simulated), "--control", "control", "--out", str(tmp_path),
                 "--sequential"]) == 0
    out = tmp_path / "searchsage"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["arms"] == ["control", "treatment"] and summary["control"] == "control"
    assert summary["srm"]["passed"] and summary["running_days"] == 4 and not summary["blocked"]
    assert sum(summary["users_per_arm"].values()) > 1000
    res = pd.read_parquet(out / "results.parquet")
    assert set(res.segment) == {"all", "head", "torso", "tail"}
    overall = res[res.segment == "all"].set_index("metric")
    assert overall.loc["long_click_rate", "method"] == "cuped-delta-welch-t"
    assert overall.loc["long_click_rate", "correction"] == "holm"
    assert overall.loc["searches_per_user", "role"] == "guardrail"
    assert overall.loc["searches_per_user", "alternative"] == "greater"
    assert (res[res.segment != "all"].query("role != 'guardrail'").correction == "fdr_bh").all()
    assert overall.loc["long_click_rate", "abs_ci_low"] <= overall.loc["long_click_rate", "abs_delta"]
    lcr = overall.loc["long_click_rate"]
    assert lcr.seq_ci_low <= lcr.treatment_raw - lcr.control_raw <= lcr.seq_ci_high
    ts = pd.read_parquet(out / "timeseries.parquet")
    assert set(ts.series) == {"daily", "cumulative"} and ts.day.max() == 3
    last = ts[(ts.series == "cumulative") & (ts.day == 3) & (ts.metric == "impressions_per_user")
              & (ts.arm == "treatment")].iloc[0]
    # the last cumulative point is the final (unadjusted) analysis
    assert last.value == pytest.approx(overall.loc["impressions_per_user", "treatment_raw"])
    rel = pd.read_parquet(out / "relevance_per_query.parquet")
    assert set(rel.arm) == {"control", "treatment"} and rel.ndcg_at_k.dropna().between(0, 1 + 1e-9).all()
    assert rel.ndcg_at_k.notna().mean() > 0.5 and rel.precision_at_k.between(0, 1).all()
    rj = json.loads((out / "relevance.json").read_text())
    assert [c["metric"] for c in rj["comparisons"]] == ["ndcg@10", "p@8"]
    assert "results.md" in summary["files"] and "# A/B results" in (out / "results.md").read_text()
    json.loads((out / "results.json").read_text())  # strict JSON


def test_injected_effect_is_detected(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    assert main(["abtest", "simulate", "--synthetic-arena", "--out", str(logs), "--users", "4000", "--days", "5",
                 "--effect", "0.25", "--seed", "3"]) == 0
    assert main(["abtest", "analyze", str(logs), "--control", "control", "--out", str(tmp_path / "r"),
                 "--no-segments"]) == 0
    res = pd.read_parquet(tmp_path / "r" / "searchsage" / "results.parquet").set_index("metric")
    row = res.loc["long_click_rate"]
    assert row.significant and row.p_value_adjusted < 0.05 and 0.1 < row.rel_delta < 0.4
    assert row.rel_ci_low < 0.25 < row.rel_ci_high


def test_injected_srm_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "logs"
    assert main(["abtest", "simulate", "--synthetic-arena", "--out", str(logs), "--users", "4000", "--days", "3",
                 "--srm", "0.15"]) == 0
    capsys.readouterr()
    assert main(["abtest", "analyze", str(logs), "--control", "control", "--out", str(tmp_path / "r")]) == 3
    err = capsys.readouterr().err
    assert "sample ratio mismatch" in err and "--allow-srm" in err
    assert not (tmp_path / "r" / "searchsage" / "summary.json").exists()
    assert main(["abtest", "analyze", str(logs), "--control", "control", "--out", str(tmp_path / "r"),
                 "--allow-srm", "--no-segments"]) == 0
    summary = json.loads((tmp_path / "r" / "searchsage" / "summary.json").read_text())
    assert summary["blocked"] and not summary["srm"]["passed"] and summary["srm"]["p"] < 0.001
    assert pd.read_parquet(tmp_path / "r" / "searchsage" / "results.parquet").blocked.all()
    assert "BLOCKED" in (tmp_path / "r" / "searchsage" / "results.md").read_text()


def test_unknown_control_and_metric_are_user_errors(simulated: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["abtest", "analyze", str(simulated), "--control", "ctrl", "--out", str(tmp_path)]) == 2
    assert "control arm 'ctrl' not found" in capsys.readouterr().err
    assert main(["abtest", "analyze", str(simulated), "--control", "control", "--metrics", "nope",
                 "--out", str(tmp_path)]) == 2
    assert "unknown metric" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", ["simulate", "aggregate", "analyze"])
def test_help(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["abtest", cmd, "--help"])
    assert exc.value.code == 0 and "usage:" in capsys.readouterr().out


def test_simulator_speed() -> None:
    from abtest.simulate.engine import SimConfig, simulate_events, synthetic_arena

    arena = synthetic_arena()
    t0 = time.perf_counter()
    ev = simulate_events(arena, SimConfig(n_users=10_000, days=14))
    took = time.perf_counter() - t0
    assert ev.i_search.size > 1_000_000 and took < 10.0, took


def test_simulate_from_precomputed_rankings(dataset: Path, simulated: Path, tmp_path: Path) -> None:
    """An A/A run from a precomputed ranking file: both arms serve the control's lists."""
    served = pq.read_table(simulated / "served.parquet").to_pandas()
    ctrl = served[served.arm == "control"]
    pq.write_table(pa.Table.from_pandas(pd.concat([ctrl, ctrl.assign(arm="treatment")]), preserve_index=False),
                   tmp_path / "rank.parquet")
    logs = tmp_path / "logs"
    assert main(["abtest", "simulate", "--data", str(dataset), "--out", str(logs), "--users", "300", "--days", "2",
                 "--rankings", str(tmp_path / "rank.parquet")]) == 0
    out = pq.read_table(logs / "served.parquet").to_pandas()
    a = out[out.arm == "control"].set_index("query").pin_ids.map(list)
    b = out[out.arm == "treatment"].set_index("query").pin_ids.map(list)
    assert (a == b.loc[a.index]).all()
