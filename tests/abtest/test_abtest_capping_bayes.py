"""Capping, the Bayesian engine and adjusted CIs through the analysis (SQL) and the CLI, checked
against direct :mod:`abtest.stats` calls on the same per-user arrays."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abtest.analysis import AnalysisConfig, analyze_user_table
from abtest.metrics import UnknownMetricError
from abtest.stats import MeanStats, RatioStats, StatsInputError, ratio_ttest, welch_ttest
from abtest.stats.bayesian import GaussianPrior, bayesian_test


def _table(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    heavy = np.where(rng.random(n) < 0.01, 40.0, 1.0)
    imp = np.round(rng.poisson(30, n) * heavy)
    clicks = rng.binomial(imp.astype(int), 0.1)
    arm = rng.choice(["a", "b"], n)
    imp = np.where(arm == "b", np.round(imp * 1.05), imp)
    return pd.DataFrame({
        "user_id": [f"u{i}" for i in range(n)], "arm": arm, "impressions": imp.astype(np.int64), "clicks": clicks,
        "long_clicks": rng.binomial(clicks, 0.4), "searches": rng.poisson(4, n), "related_searches": rng.poisson(1, n),
    })


def _capped(x: pd.Series, q: float) -> np.ndarray:
    return np.minimum(x.to_numpy(float), np.quantile(x.to_numpy(float), q))


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, Path]:
    df = _table()
    path = tmp_path_factory.mktemp("cap") / "users.parquet"
    df.to_parquet(path)
    return df, path


def test_sql_caps_equal_numpy_pooled_quantile(table: tuple[pd.DataFrame, Path]) -> None:
    df, path = table
    cfg = AnalysisConfig(control="a", caps={"impressions_per_user": 0.99}, cap_quantile=0.999)
    res = analyze_user_table(path, cfg)
    r = res.results.set_index("metric")
    a, b = df.arm == "a", df.arm == "b"
    imp = _capped(df.impressions, 0.99)
    ref = welch_ttest(MeanStats.from_array(imp[a]), MeanStats.from_array(imp[b]))
    row = r.loc["impressions_per_user"]
    assert row.p_value == pytest.approx(ref.p_value, rel=1e-9) and row.control_value == pytest.approx(ref.control_value)
    assert row.cap_quantile == 0.99
    assert row.share_capped == pytest.approx(float((df.impressions > np.quantile(df.impressions, 0.99)).mean()))
    assert row.cap_values == f"impressions <= {np.quantile(df.impressions, 0.99):.6g}"
    # ratio: numerator and denominator capped, each at its own 0.999 quantile
    num, den = _capped(df.long_clicks, 0.999), _capped(df.impressions, 0.999)
    rr = ratio_ttest(RatioStats.from_arrays(num[a], den[a]), RatioStats.from_arrays(num[b], den[b]))
    assert r.loc["long_click_rate", "p_value"] == pytest.approx(rr.p_value, rel=1e-9)
    assert "long_clicks <= " in r.loc["long_click_rate", "cap_values"]
    assert math.isnan(r.loc["long_click_user_share", "cap_quantile"])  # proportions are never capped
    caps = {(c["metric"], c["column"], c["quantile"]) for c in res.extra["capping"]}
    assert ("impressions_per_user", "impressions", 0.99) in caps
    assert ("long_click_rate, ctr", "impressions", 0.999) in caps  # one cap, shared by the two ratios
    assert res.extra["conventions"]["capping"]["cap_quantile"] == 0.999
    # capping changes the answer here (1% heavy users)
    plain = analyze_user_table(path, AnalysisConfig(control="a")).results.set_index("metric")
    assert plain.loc["impressions_per_user", "p_value"] != pytest.approx(row.p_value, rel=1e-3)
    assert "cap_quantile" not in plain.columns and "chance_to_win" not in plain.columns


def test_bayesian_columns_and_adjusted_cis(table: tuple[pd.DataFrame, Path]) -> None:
    df, path = table
    cfg = AnalysisConfig(control="a", engine="both", prior_proper=True, prior_stddev=0.1)
    res = analyze_user_table(path, cfg).results
    r = res.set_index("metric")
    a, b = df[df.arm == "a"], df[df.arm == "b"]
    ref = bayesian_test(MeanStats.from_array(a.impressions), MeanStats.from_array(b.impressions),
                        prior=GaussianPrior(0.0, 0.1, True))
    row = r.loc["impressions_per_user"]
    assert row.chance_to_win == pytest.approx(ref.chance_to_win, rel=1e-9)
    assert (row.bayes_ci_low, row.bayes_ci_high) == pytest.approx(ref.ci, rel=1e-9)
    assert row.risk_control == pytest.approx(ref.risk_control, rel=1e-9)
    assert row.bayes_method == "gaussian-effect-proper-prior"
    # lower is better for no catalogue metric, higher_is_better=None is not inverted
    decision = res[(res.segment == "all") & (res.role == "decision")]
    assert len(decision) == 4 and set(decision.ci_adjustment) == {"holm-step"}
    for d in decision.itertuples():
        excl = d.abs_ci_adj_low > 0 or d.abs_ci_adj_high < 0
        assert excl == (d.p_value_adjusted < 0.05)
        assert d.abs_ci_bonf_low <= d.abs_ci_adj_low + 1e-12 and d.abs_ci_adj_low <= d.abs_ci_low + 1e-12
    assert res[res.role == "guardrail"].ci_adjustment.isna().all()
    assert res[res.role == "secondary"].abs_ci_bonf_low.isna().all()


def test_config_errors(table: tuple[pd.DataFrame, Path]) -> None:
    _, path = table
    with pytest.raises(StatsInputError, match="quantile"):
        AnalysisConfig(control="a", cap_quantile=1.0)
    with pytest.raises(StatsInputError, match="engine"):
        AnalysisConfig(control="a", engine="bandit")
    with pytest.raises(UnknownMetricError, match="--cap nope"):
        analyze_user_table(path, AnalysisConfig(control="a", caps={"nope": 0.9}))
    with pytest.raises(StatsInputError, match="proportion"):
        analyze_user_table(path, AnalysisConfig(control="a", caps={"long_click_user_share": 0.9}))


def test_cli_writes_capping_bayes_and_adjusted_cis(table: tuple[pd.DataFrame, Path], tmp_path: Path) -> None:
    from encoders.cli.main import main

    _, path = table
    out = tmp_path / "out"
    assert main(["abtest", "analyze", str(path), "--control", "a", "--out", str(out), "--experiment", "capx",
                 "--cap", "impressions_per_user=0.99", "--cap-quantile", "0.999", "--engine", "both"]) == 0
    rows = json.loads((out / "capx" / "results.json").read_text())
    imp = next(r for r in rows if r["metric"] == "impressions_per_user" and r["segment"] == "all")
    assert imp["cap_quantile"] == 0.99 and 0 < imp["share_capped"] < 0.02
    assert 0 <= imp["chance_to_win"] <= 1 and imp["bayes_effect"] == "relative"
    assert imp["ci_adjustment"] == "holm-step" and imp["alpha_adjusted"] <= 0.05
    summary = json.loads((out / "capx" / "summary.json").read_text())
    assert summary["conventions"]["engine"] == "both" and summary["capping"]
    md = (out / "capx" / "results.md").read_text()
    assert "P(beat control)" in md and "impressions_per_user: impressions <=" in md
