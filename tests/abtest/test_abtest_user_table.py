"""The per-user table as a public input: minimal columns work, results equal direct stats calls, bad rows fail."""

from __future__ import annotations

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
