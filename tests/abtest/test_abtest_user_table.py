"""The per-user table as a public input: minimal columns work, results equal direct stats calls, bad rows fail."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abtest.analysis import AnalysisConfig, analyze_user_table
from abtest.logs import LogValidationError
from abtest.stats.delta import ratio_ttest
from abtest.stats.proportion import proportion_test
from abtest.stats.sufficient import ProportionStats, RatioStats


def _table(n: int = 800, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    imp = rng.poisson(30, n)
    clicks = rng.binomial(imp, 0.1)
    return pd.DataFrame({
        "user_id": [f"u{i}" for i in range(n)], "arm": rng.choice(["a", "b"], n),
        "impressions": imp, "clicks": clicks, "long_clicks": rng.binomial(clicks, 0.4),
        "searches": rng.poisson(4, n), "related_searches": rng.poisson(1, n),
    })


def test_minimal_table_matches_direct_stats(tmp_path: Path) -> None:
    df = _table()
    path = tmp_path / "users.parquet"
    df.to_parquet(path)
    res = analyze_user_table(path, AnalysisConfig(control="a"), experiment="warehouse")
    r = res.results.set_index("metric")
    assert set(res.results.segment) == {"all"} and not res.results.cuped.any()
    a, b = df[df.arm == "a"], df[df.arm == "b"]
    ref = ratio_ttest(RatioStats.from_arrays(a.long_clicks, a.impressions),
                      RatioStats.from_arrays(b.long_clicks, b.impressions), metric="long_click_rate")
    assert r.loc["long_click_rate", "method"] == "delta-welch-t"
    assert r.loc["long_click_rate", "p_value"] == pytest.approx(ref.p_value, rel=1e-9)
    assert r.loc["long_click_rate", "abs_ci_low"] == pytest.approx(ref.abs_ci[0], rel=1e-9)
    prop = proportion_test(ProportionStats.from_array(a.long_clicks > 0), ProportionStats.from_array(b.long_clicks > 0))
    assert r.loc["long_click_user_share", "p_value"] == pytest.approx(prop.p_value, rel=1e-9)
    assert res.arms == {"a": int((df.arm == "a").sum()), "b": int((df.arm == "b").sum())}


def test_metric_subset_needs_only_its_columns(tmp_path: Path) -> None:
    df = _table()[["user_id", "arm", "impressions"]]
    df.to_parquet(tmp_path / "u.parquet")
    res = analyze_user_table(tmp_path / "u.parquet", AnalysisConfig(control="a", metrics=("impressions_per_user",)))
    assert list(res.results.metric) == ["impressions_per_user"]
    with pytest.raises(LogValidationError, match="column 'long_clicks'"):
        analyze_user_table(tmp_path / "u.parquet", AnalysisConfig(control="a", metrics=("long_click_rate",)))


def test_negative_count_and_two_arms_rejected(tmp_path: Path) -> None:
    df = _table(50)
    df.loc[17, "clicks"] = -1
    df.to_parquet(tmp_path / "neg.parquet")
    with pytest.raises(LogValidationError) as exc:
        analyze_user_table(tmp_path / "neg.parquet", AnalysisConfig(control="a"))
    assert exc.value.column == "clicks" and exc.value.row == 17
    df = _table(50)
    df = pd.concat([df, df.iloc[[3]].assign(arm="b" if df.arm[3] == "a" else "a")])
    df.to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(LogValidationError, match="more than one arm"):
        analyze_user_table(tmp_path / "dup.parquet", AnalysisConfig(control="a"))


def test_integer_user_ids_work_and_cli_writes_statistic_se_df(tmp_path: Path) -> None:
    import json

    from encoders.cli.main import main

    df = _table(600, seed=3)
    df["user_id"] = np.arange(10_000_000_000, 10_000_000_600, dtype=np.int64)  # int64 ids
    df.to_parquet(tmp_path / "users.parquet")
    out = tmp_path / "out"
    assert main(["abtest", "analyze", str(tmp_path / "users.parquet"), "--control", "a", "--out", str(out),
                 "--experiment", "ints", "--relative", "delta", "--srm", "binomial", "--sequential"]) == 0
    rows = json.loads((out / "ints" / "results.json").read_text())
    assert len(rows) == 8
    for r in rows:
        assert r["se"] > 0 and r["statistic"] is not None and math.isfinite(r["statistic"])
        assert r["df"] == "inf" if r["kind"] == "proportion" else r["df"] > 100
        assert r["rel_se"] > 0
    summary = json.loads((out / "ints" / "summary.json").read_text())
    conv = summary["conventions"]
    assert conv["relative"] == "delta" and conv["srm_method"] == "binomial" and conv["n_tune"] == 5000
    assert conv["test"] == "welch" and conv["variance"] == "unpooled" and summary["srm"]["method"] == "binomial"
    # a user in two arms is still reported with an integer id
    df2 = pd.concat([df, df.iloc[[5]].assign(arm="b" if df.arm[5] == "a" else "a")])
    df2.to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(LogValidationError, match=r"10000000005.*more than one arm") as exc:
        analyze_user_table(tmp_path / "dup.parquet", AnalysisConfig(control="a"))
    assert exc.value.row == 5
    df.assign(user_id=df.user_id.astype(float)).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(LogValidationError, match="string or integer"):
        analyze_user_table(tmp_path / "f.parquet", AnalysisConfig(control="a"))


def test_conventions_reach_the_tests(tmp_path: Path) -> None:
    df = _table(900, seed=4)
    df.to_parquet(tmp_path / "u.parquet")
    cfg = AnalysisConfig(control="a", test="student", proportion_test="fisher", cuped=False)
    r = analyze_user_table(tmp_path / "u.parquet", cfg).results.set_index("metric")
    assert r.loc["long_click_rate", "method"] == "delta-student-t"
    assert r.loc["impressions_per_user", "method"] == "student-t"
    assert r.loc["long_click_user_share", "method"] == "fisher-exact"
    assert r.loc["impressions_per_user", "df"] == 900 - 2
    with pytest.raises(ValueError, match="relative must be one of"):
        AnalysisConfig(control="a", relative="symmetric")
    with pytest.raises(ValueError, match="n_tune"):
        AnalysisConfig(control="a", n_tune=0)
