"""Aggregation: exact per-user counts on hand-made logs; SQL sufficient statistics = numpy ones."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from abtest.aggregate import AggregateConfig, aggregate_logs
from abtest.logs import write_log
from abtest.moments import group_moments, moments_from_arrays

T0 = pd.Timestamp("2026-03-01T00:00:00Z")


def _ts(hours: list[float]) -> pa.Array:
    return pa.array([T0 + pd.Timedelta(hours=h) for h in hours], pa.timestamp("us", tz="UTC"))


@pytest.fixture()
def hand_logs(tmp_path: Path) -> Path:
    """u1 control, u2 treatment, u3 exposed to both arms (excluded), u4 never exposed (ignored)."""
    d = tmp_path / "logs"
    write_log(pa.table({"experiment": ["e"] * 5, "arm": ["control", "treatment", "control", "treatment", "control"],
                        "user_id": ["u1", "u2", "u3", "u3", "u1"], "timestamp": _ts([1, 2, 1, 3, 30])}),
              d / "exposures.parquet", "exposures")
    # searches: u1 one pre-period (day -1) + two in the experiment (one related); u2 one on day 1
    write_log(pa.table({"user_id": ["u1", "u1", "u1", "u2", "u4"], "session_id": ["a", "b", "b", "c", "z"],
                        "query": ["pop", "pop", "rare", "pop", "pop"], "timestamp": _ts([-20, 1, 1.1, 26, 5]),
                        "is_related": [False, False, True, False, False]}), d / "searches.parquet", "searches")
    write_log(pa.table({"user_id": ["u1"] * 4 + ["u2"] * 2 + ["u4"], "session_id": ["a", "b", "b", "b", "c", "c", "z"],
                        "query": ["pop", "pop", "pop", "rare", "pop", "pop", "pop"],
                        "pin_id": list("pqrstuv"), "position": [0, 0, 1, 0, 0, 1, 0],
                        "timestamp": _ts([-20, 1, 1, 1.1, 26, 26, 5])}), d / "impressions.parquet", "impressions")
    write_log(pa.table({"user_id": ["u1", "u1", "u2", "u2"], "session_id": ["a", "b", "c", "c"],
                        "query": ["pop", "pop", "pop", "pop"], "pin_id": ["p", "q", "t", "u"],
                        "position": [0, 0, 0, 1], "timestamp": _ts([-20, 1, 26, 26]),
                        "dwell_s": [50.0, 35.0, 34.9, 120.0]}), d / "clicks.parquet", "clicks")
    return d


def test_exact_counts(hand_logs: Path, tmp_path: Path) -> None:
    res = aggregate_logs(hand_logs, tmp_path / "agg", AggregateConfig(pre_period_days=2))
    assert res.arms == {"control": 1, "treatment": 1} and res.multi_arm_users_excluded == 1
    assert res.experiment == "e" and res.running_days == 2
    users = pd.read_parquet(res.users_path).set_index(["user_id", "segment"])
    u1 = users.loc[("u1", "all")]
    assert (u1.arm, u1.impressions, u1.clicks, u1.long_clicks, u1.searches, u1.related_searches) == (
        "control", 3, 1, 1, 2, 1)  # dwell 35.0 is a long click (>= 35)
    assert (u1.pre_impressions, u1.pre_clicks, u1.pre_long_clicks, u1.pre_searches) == (1, 1, 1, 1)
    u2 = users.loc[("u2", "all")]
    assert (u2.arm, u2.impressions, u2.clicks, u2.long_clicks, u2.first_day) == ("treatment", 2, 2, 1, 0)
    # "pop" holds 4 of 5 searches → head; "rare" has 0.8 of searches before it (not < torso_share 0.8) → tail
    assert users.loc[("u1", "head")].impressions == 2
    assert users.loc[("u1", "tail")].impressions == 1
    assert ("u3", "all") not in users.index and ("u4", "all") not in users.index
    days = pd.read_parquet(res.user_days_path).set_index(["user_id", "day"])
    assert days.loc[("u1", 0)].impressions == 3 and days.loc[("u2", 1)].clicks == 2


def test_long_click_threshold_configurable(hand_logs: Path, tmp_path: Path) -> None:
    res = aggregate_logs(hand_logs, tmp_path / "agg", AggregateConfig(long_click_s=100))
    users = pd.read_parquet(res.users_path).set_index(["user_id", "segment"])
    assert users.loc[("u1", "all")].long_clicks == 0 and users.loc[("u2", "all")].long_clicks == 1


def test_sql_moments_equal_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    n = 500
    df = pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "arm": rng.choice(["control", "treatment"], n),
                       "segment": "all", "impressions": rng.poisson(20, n), "long_clicks": rng.poisson(1, n),
                       "pre_impressions": rng.poisson(20, n)})
    path = tmp_path / "users.parquet"
    df.to_parquet(path)
    variables = ["impressions", "long_clicks", "pre_impressions", "any_long_clicks"]
    con = duckdb.connect()
    sql = group_moments(con, f"SELECT * FROM read_parquet('{path}')", variables)
    for arm in ("control", "treatment"):
        sub = df[df.arm == arm]
        ref = moments_from_arrays({c: sub[c].to_numpy() for c in sub.columns if c not in ("user_id", "arm", "segment")},
                                  variables)
        got = sql[(arm, "all")]
        assert got.n == ref.n == len(sub)
        for v in ref.sums:
            assert got.sums[v] == pytest.approx(ref.sums[v])
        for k in ref.cross:
            assert got.cross[k] == pytest.approx(ref.cross[k])
