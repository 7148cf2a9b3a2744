"""Loaders over real result directories from the A/B pipeline, and their errors on broken files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from dash_fixtures import HEALTHY, SRM, DashEnv

from dashboard.loaders import (
    DashboardDataError,
    list_experiments,
    load_eval_report,
    load_experiment,
    load_pins,
)


def test_list_experiments_reports_status_from_the_summaries(dash_env: DashEnv) -> None:
    statuses = {s.path.name: s for s in list_experiments(dash_env.results)}
    assert set(statuses) == {HEALTHY, SRM}
    for name, st in statuses.items():
        summary = json.loads((dash_env.results / name / "summary.json").read_text())
        assert st.error is None
        assert st.users_per_arm == summary["users_per_arm"]
        assert st.running_days == summary["running_days"]
        assert st.n_significant == summary["n_significant_decision_metrics"]
        assert st.srm_passed is summary["srm"]["passed"]
    assert statuses[HEALTHY].srm_passed is True and statuses[SRM].srm_passed is False
    assert statuses[SRM].srm_p < 0.001
    row = statuses[SRM].as_row()
    assert row["SRM"] == "FAIL" and row["running days"] == 4


def test_load_experiment_reads_every_part(dash_env: DashEnv) -> None:
    exp = load_experiment(dash_env.results, HEALTHY)
    assert exp.control == "control" and exp.treatments == ["treatment"] and exp.srm_passed
    assert set(exp.overall().segment) == {"all"} and {"head", "torso", "tail"} <= set(exp.results.segment)
    assert exp.timeseries is not None and set(exp.timeseries.series) == {"daily", "cumulative"}
    assert exp.timeseries.day.max() == 5  # 6 days, 0-based
    assert exp.relevance is not None and {c["metric"] for c in exp.relevance["comparisons"]} == {"ndcg@10", "p@8"}
    assert exp.relevance_per_query is not None and set(exp.relevance_per_query.arm) == {"control", "treatment"}
    assert exp.users_path is not None and exp.notes == []


def _copy(dash_env: DashEnv, tmp_path: Path, name: str = HEALTHY) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(dash_env.results / name, dst / name)
    return dst


def test_missing_results_dir_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(DashboardDataError, match=r"does not exist; pass --results DIR"):
        list_experiments(tmp_path / "nope")


def test_malformed_summary_is_reported_per_experiment(dash_env: DashEnv, tmp_path: Path) -> None:
    root = _copy(dash_env, tmp_path)
    (root / "broken").mkdir()
    (root / "broken" / "summary.json").write_text("{not json")
    (root / "partial").mkdir()
    (root / "partial" / "summary.json").write_text(json.dumps({"experiment": "partial", "control": "c"}))
    statuses = {s.path.name: s for s in list_experiments(root)}
    assert statuses[HEALTHY].error is None
    assert "is not valid JSON" in statuses["broken"].error and "summary.json" in statuses["broken"].error
    assert "'users_per_arm' missing" in statuses["partial"].error
    with pytest.raises(DashboardDataError, match="not valid JSON"):
        load_experiment(root, "broken")


def test_results_table_without_columns_or_corrupt_is_explained(dash_env: DashEnv, tmp_path: Path) -> None:
    root = _copy(dash_env, tmp_path)
    res = root / HEALTHY / "results.parquet"
    pd.read_parquet(res).drop(columns=["rel_delta", "p_value"]).to_parquet(res)
    with pytest.raises(DashboardDataError, match=r"missing column\(s\) \['rel_delta', 'p_value'\]"):
        load_experiment(root, HEALTHY)
    res.write_bytes(b"PAR1 garbage")
    with pytest.raises(DashboardDataError, match="not a readable parquet file"):
        load_experiment(root, HEALTHY)
    res.unlink()
    with pytest.raises(DashboardDataError, match=r"results.parquet not found \(written by `searchsage abtest analyze"):
        load_experiment(root, HEALTHY)


def test_optional_parts_degrade_to_notes(dash_env: DashEnv, tmp_path: Path) -> None:
    root = _copy(dash_env, tmp_path)
    (root / HEALTHY / "timeseries.parquet").unlink()
    (root / HEALTHY / "relevance.json").write_text("[1, 2]")
    exp = load_experiment(root, HEALTHY)
    assert exp.timeseries is None and exp.relevance is None and exp.relevance_per_query is None
    assert any("timeseries.parquet not found" in n for n in exp.notes)
    assert any("expected a JSON object" in n for n in exp.notes)


def test_eval_report_and_pins(dash_env: DashEnv, tmp_path: Path) -> None:
    report = load_eval_report(dash_env.bundle)
    assert [s["name"] for s in report["systems"]] == ["bm25", "zero_shot", "searchsage"]
    (tmp_path / "eval_report.json").write_text('{"recall@10": 0.5}')
    with pytest.raises(DashboardDataError, match="key 'systems' missing"):
        load_eval_report(tmp_path)
    with pytest.raises(DashboardDataError, match="searchsage evaluate"):
        load_eval_report(tmp_path / "absent")
    pins = load_pins(dash_env.pins)
    assert len(pins.ids) == 500 and pins.embedding is not None and pins.embedding.shape == (500, 32)
    pd.DataFrame({"pin_id": ["a"]}).to_parquet(tmp_path / "p.parquet")
    with pytest.raises(DashboardDataError, match=r"missing column\(s\) \['text'\]"):
        load_pins(tmp_path / "p.parquet")
