"""Pure builders: metric table verdicts, relevance swings, Altair specs, power plans."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from dash_fixtures import HEALTHY, DashEnv

from abtest.metrics import CATALOGUE
from abtest.stats.power import metric_power
from dashboard import charts
from dashboard.loaders import load_experiment, load_users
from dashboard.planning import baseline_stats, plan, power_curve_frame
from dashboard.tables import direction, metric_table, relevance_swings, side_by_side


def _row(**kw: object) -> pd.Series:
    base = {"role": "decision", "significant": True, "rel_delta": 0.1, "higher_is_better": True,
            "guardrail_passed": None}
    return pd.Series({**base, **kw})


def test_direction_uses_significance_and_preferred_direction() -> None:
    assert direction(_row()) == "better"
    assert direction(_row(rel_delta=-0.1)) == "worse"
    assert direction(_row(higher_is_better=False)) == "worse"
    assert direction(_row(significant=False)) == ""
    assert direction(_row(role="guardrail", guardrail_passed=False, significant=False)) == "worse"
    assert direction(_row(role="guardrail", guardrail_passed=True)) == "better"


def test_metric_table_matches_results_rows(dash_env: DashEnv) -> None:
    exp = load_experiment(dash_env.results, HEALTHY)
    rows = exp.overall()
    table = metric_table(rows)
    assert list(table.metric) == list(rows.metric) and "arm" not in table.columns  # one treatment arm
    r0 = rows.iloc[0]
    assert table["Δ rel [95% CI]"].iloc[0] == (
        f"{100 * r0.rel_delta:+.2f}% [{100 * r0.rel_ci_low:+.2f}%, {100 * r0.rel_ci_high:+.2f}%]")
    sig = rows[(rows.role == "decision") & rows.significant]
    assert set(table.loc[sig.index, "verdict"]) <= {"better", "worse"}
    assert (table.loc[rows.role.eq("decision") & ~rows.significant, "verdict"] == "").all()
    guard = rows[rows.role == "guardrail"]
    assert table.loc[guard.index, "verdict"].tolist() == [
        "better" if p else "worse" for p in guard.guardrail_passed]
    segs = metric_table(exp.results[exp.results.metric == "ctr"])
    assert "segment" in segs.columns and set(segs.segment) == {"all", "head", "torso", "tail"}


def test_forest_plot_clips_one_sided_intervals(dash_env: DashEnv) -> None:
    rows = load_experiment(dash_env.results, HEALTHY).overall()
    rows = rows.assign(verdict=metric_table(rows)["verdict"].to_numpy())
    assert np.isinf(rows[rows.role == "guardrail"].rel_ci_high).all()  # non-inferiority: one-sided
    spec = charts.forest_plot(rows).to_dict()
    data = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert len(data) == len(rows) and np.isfinite(data.rel_ci_high).all()
    assert data.rel_ci_high_open.sum() == len(rows[rows.role == "guardrail"])
    finite = rows[["rel_delta", "rel_ci_low"]].to_numpy(dtype=float)
    assert data.rel_ci_high.max() <= 1.2 * np.abs(finite[np.isfinite(finite)]).max() + 1e-12


def test_lift_over_time_has_one_point_per_day(dash_env: DashEnv) -> None:
    ts = load_experiment(dash_env.results, HEALTHY).timeseries
    spec = charts.lift_over_time(ts, "ctr", "cumulative").to_dict()
    data = pd.DataFrame(next(iter(spec["datasets"].values())))
    assert sorted(data.day) == list(range(6)) and set(data.arm) == {"treatment"}
    want = ts[(ts.metric == "ctr") & (ts.series == "cumulative") & (ts.arm == "treatment")].sort_values("day")
    np.testing.assert_allclose(data.sort_values("day").rel_delta, want.rel_delta.astype(float))


def test_relevance_swings_are_the_extreme_paired_differences(dash_env: DashEnv) -> None:
    pq = load_experiment(dash_env.results, HEALTHY).relevance_per_query
    winners, losers = relevance_swings(pq, "control", "treatment", n=3)
    wide = pq.pivot(index="query", columns="arm", values="ndcg_at_k")
    diff = (wide.treatment - wide.control).sort_values()
    assert losers["diff"].tolist() == diff[diff < 0].head(3).tolist()
    assert winners["diff"].tolist() == diff[diff > 0].sort_values(ascending=False).head(3).tolist()
    q = winners["query"].iloc[0]
    served = pq[(pq["query"] == q) & (pq.arm == "treatment")].served_pin_ids.iloc[0]
    assert winners["treatment_results"].iloc[0] == list(served)
    sbs = side_by_side(["a", "b"], ["c"], texts={"a": "lamp"}, grades={"a": 3.0})
    assert sbs.control.tolist() == ["a — lamp  (grade 3)", "b  (unjudged)"] and sbs.treatment.tolist() == [
        "c  (unjudged)", ""]


def test_power_plan_is_consistent_with_abtest_stats(dash_env: DashEnv) -> None:
    exp = load_experiment(dash_env.results, HEALTHY)
    metric = CATALOGUE["long_click_rate"]
    users = load_users(exp.users_path, list(metric.columns))
    base = baseline_stats(users[users.arm == "control"], metric)
    p = plan(base, metric.name, 1000, 0.05)
    assert math.isclose(p.baseline, users[users.arm == "control"].long_clicks.sum()
                        / users[users.arm == "control"].impressions.sum())
    assert math.isclose(metric_power(base, p.mde_relative, 1000, relative=True), 0.8, abs_tol=1e-6)
    assert metric_power(base, 0.05, p.users_needed, relative=True) >= 0.8
    assert metric_power(base, 0.05, p.users_needed - 1, relative=True) < 0.8
    curve = power_curve_frame(base, 0.05, 5000)
    assert curve.power.is_monotonic_increasing and curve.users_per_arm.max() == 5000
