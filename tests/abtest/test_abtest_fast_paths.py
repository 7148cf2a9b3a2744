"""The fast paths equal the SQL ones: numpy aggregation vs DuckDB, dense time series vs SQL, footer-proved
validation vs the full scan — on simulated logs and on hand-made edge cases."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from unittest.mock import patch

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abtest.aggregate import AggregateConfig, aggregate_logs
from abtest.aggregate_stream import aggregate_stream
from abtest.analysis import AnalysisConfig
from abtest.event_counts import (
    DAY_US,
    CountersTooLarge,
    EventCounter,
    ExposureUsers,
    counter_bytes,
)
from abtest.logs import LogValidationError, arrow_log_schema, validate_logs, values_clean
from abtest.metrics import resolve_metrics
from abtest.moments import metric_variables
from abtest.pipeline import analyze_path
from abtest.simulate.engine import SimConfig, synthetic_arena
from abtest.simulate.writer import write_simulated_logs
from abtest.string_codes import StringCodes
from abtest.timeseries import _dense_moments, series_moments

T0 = pd.Timestamp("2026-03-01T00:00:00Z")
RESULT_FIELDS = ("experiment", "arms", "start", "end", "running_days", "multi_arm_users_excluded")


def _both(logs: Path, tmp: Path, **cfg) -> dict:
    """Aggregate with each engine → {engine: (result, users frame, user_days frame)}."""
    out = {}
    for engine in ("numpy", "duckdb"):
        res = aggregate_logs(logs, tmp / engine, AggregateConfig(engine=engine, **cfg))
        assert res.engine == engine
        users = pd.read_parquet(res.users_path).sort_values(["user_id", "segment"]).reset_index(drop=True)
        days = pd.read_parquet(res.user_days_path).sort_values(["user_id", "day"]).reset_index(drop=True)
        out[engine] = (res, users, days)
    return out


def _assert_same(both: dict) -> None:
    (a, ua, da), (b, ub, db) = both["numpy"], both["duckdb"]
    assert {f: getattr(a, f) for f in RESULT_FIELDS} == {f: getattr(b, f) for f in RESULT_FIELDS}
    pd.testing.assert_frame_equal(ua, ub)
    pd.testing.assert_frame_equal(da, db)
    for path_a, path_b in ((a.users_path, b.users_path), (a.user_days_path, b.user_days_path)):
        assert pq.read_schema(path_a).equals(pq.read_schema(path_b))  # types and nullability


@pytest.fixture(scope="module")
def sim_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "logs"
    # several part files → per-file dictionaries; srm so the arms differ in size
    write_simulated_logs(synthetic_arena(n_queries=60, n_pins=400, seed=1),
                         SimConfig(n_users=900, days=4, pre_days=3, seed=2, srm=0.1), out,
                         users_per_chunk=250, progress=False)
    return out


def test_engines_identical_on_simulated_logs(sim_logs: Path, tmp_path: Path) -> None:
    both = _both(sim_logs, tmp_path, pre_period_days=2)  # part of the simulated pre-period falls outside
    _assert_same(both)
    users = both["numpy"][1]
    assert set(users.segment) == {"all", "head", "torso", "tail"} and users.pre_impressions.sum() > 0


def test_pipeline_results_identical_across_engines(sim_logs: Path, tmp_path: Path) -> None:
    """Logs → results directory: numpy aggregation + dense series = DuckDB aggregation + SQL series."""
    outs = {}
    for engine, dense in (("numpy", True), ("duckdb", False)):
        with patch("abtest.timeseries._dense_moments", _dense_moments if dense else lambda *a: None):
            outs[engine] = analyze_path(sim_logs, tmp_path / engine, AnalysisConfig(control="control", sequential=True),
                                        aggregate_config=AggregateConfig(engine=engine)).out_dir
    assert outs["numpy"].name == outs["duckdb"].name
    for name in ("results.parquet", "timeseries.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(outs["numpy"] / name), pd.read_parquet(outs["duckdb"] / name),
                                      check_exact=True)
    for name in ("results.json", "results.md"):
        assert (outs["numpy"] / name).read_text() == (outs["duckdb"] / name).read_text()
    summaries = [json.loads((outs[e] / "summary.json").read_text()) for e in ("numpy", "duckdb")]
    for s in summaries:
        s.pop("created_at")
    assert summaries[0] == summaries[1]


def _ts(hours: list[float | None], unit: str = "us") -> pa.Array:
    return pa.array([None if h is None else T0 + pd.Timedelta(hours=h) for h in hours], pa.timestamp(unit, tz="UTC"))


def _write(table: pa.Table, path: Path, kind: str) -> None:
    """Canonical types, nullable (these logs skip validation to reach the engines with nulls)."""
    schema = arrow_log_schema(kind)
    nullable = pa.schema([f.with_nullable(True) for f in schema])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({f.name: table[f.name].cast(f.type) for f in nullable}, schema=nullable), path)


def _edge_logs(root: Path) -> Path:
    """u1..u4 control/treatment; m1/m2 in both arms (all of arm 'third' is multi-arm → empty arm);
    ids that are prefixes of each other and non-ASCII; a never-exposed user; events before a user's
    own exposure, inside and outside the pre-period; nulls in every event column; part files."""
    d = root / "logs"
    users = ["u1", "u10", "u1é", "v-long-user-id-0042", "m1", "m1", "m2", "m2", "u1"]
    arms = ["control", "treatment", "control", "treatment", "control", "third", "treatment", "third", "control"]
    _write(pa.table({"experiment": ["e"] * 9, "arm": arms, "user_id": users,
                     "timestamp": _ts([1, 2, 30, 50, 1, 3, 2, 4, 0.5])}), d / "exposures.parquet", "exposures")
    # searches in two part files; "rare" and "mid" are ranked by volume, "ghost" only appears in impressions
    s_users = ["u1", "u1", "u10", "u1é", "v-long-user-id-0042", "zz-never", "u1", None, "u10"]
    s_query = ["pop", "pop", "pop", "mid", "pop", "pop", "rare", "pop", None]
    _write(pa.table({"user_id": s_users, "session_id": list("abcdefghi"), "query": s_query,
                     "timestamp": _ts([-20, 1, 3, 31, 60, 5, 26, 5, 27]),
                     "is_related": [False, True, False, None, True, False, True, False, True]}),
           d / "searches" / "part-0.parquet", "searches")
    _write(pa.table({"user_id": ["u1é", "u1"], "session_id": ["j", "k"], "query": ["mid", "pop"],
                     "timestamp": _ts([32, -400]), "is_related": [False, False]}),
           d / "searches" / "part-1.parquet", "searches")
    i_users = ["u1", "u1", "u1", "u10", "u10", "u1é", "u1é", "v-long-user-id-0042", "m1", "u10", None, "u1", "u1"]
    i_query = ["pop", "pop", "rare", "pop", "ghost", "mid", "mid", "pop", "pop", None, "pop", "pop", "pop"]
    i_hours = [-20, 1, 26, 3, 3, 31, 10, 60, 2, 4, 5, None, -30]  # u1é at 10 h: before its exposure (dropped)
    _write(pa.table({"user_id": i_users, "session_id": ["s"] * 13, "query": i_query, "pin_id": ["p"] * 13,
                     "position": list(range(13)), "timestamp": _ts(i_hours)}), d / "impressions.parquet",
           "impressions")
    _write(pa.table({"user_id": ["u1", "u1", "u10", "u10", "u1é", "v-long-user-id-0042", "u1"],
                     "session_id": ["s"] * 7, "query": ["pop", "rare", "pop", "pop", "mid", "pop", None],
                     "pin_id": ["p"] * 7, "position": [0] * 7, "timestamp": _ts([1, 26, 3, 4, 31, 60, 2]),
                     "dwell_s": [35.0, 34.999, None, float("nan"), 120.0, 1.0, 80.0]}),
           d / "clicks" / "part-0.parquet", "clicks")
    return d


def test_engines_identical_on_edge_cases(tmp_path: Path) -> None:
    logs = _edge_logs(tmp_path)
    both = _both(logs, tmp_path, pre_period_days=1, validate=False)
    _assert_same(both)
    res, users, days = both["numpy"]
    assert res.arms == {"control": 2, "treatment": 2} and res.multi_arm_users_excluded == 2  # "third" emptied
    u1 = users.set_index(["user_id", "segment"]).loc[("u1", "all")]
    # impressions at 1 h and 26 h (null timestamp dropped); -20 h is in the 1-day pre-period, -30 h is not
    assert (u1.impressions, u1.pre_impressions, u1.clicks, u1.long_clicks) == (2, 1, 3, 2)
    assert set(users.user_id) == {"u1", "u10", "u1é", "v-long-user-id-0042"}
    assert days.day.min() >= 0


def test_engines_identical_with_custom_segments(sim_logs: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(sim_logs, logs)
    queries = pq.read_table(logs / "searches", columns=["query"])["query"].unique().to_pylist()
    seg = ["head" if i % 3 == 0 else ("brand" if i % 3 == 1 else None) for i in range(len(queries))]
    pq.write_table(pa.table({"query": queries, "segment": seg}), logs / "query_segments.parquet")
    both = _both(logs, tmp_path)
    _assert_same(both)
    assert set(both["numpy"][1].segment) == {"all", "head", "tail"}  # 'brand' only counts in 'all'


@pytest.mark.parametrize("segment", [["head", "tail"], ["all", "head"]])
def test_bad_custom_segments_are_errors(sim_logs: Path, tmp_path: Path, segment: list[str]) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(sim_logs, logs)
    query = ["q", "q"] if segment[0] == "head" else ["q", "r"]
    pq.write_table(pa.table({"query": query, "segment": segment}), logs / "query_segments.parquet")
    for engine in ("numpy", "duckdb"):
        with pytest.raises(LogValidationError, match=r"more than one segment|reserved"):
            aggregate_logs(logs, tmp_path / engine, AggregateConfig(engine=engine))


def test_auto_engine_falls_back_to_sql_when_counters_exceed_the_limit(sim_logs: Path, tmp_path: Path) -> None:
    assert aggregate_logs(sim_logs, tmp_path / "a", AggregateConfig()).engine == "numpy"
    # 900 users × (2 × 3 segments + 4 days) × 5 int32 counters = 180 kB > half of 300 kB: "use SQL"
    (tmp_path / "b").mkdir()
    assert aggregate_stream(sim_logs, tmp_path / "b", AggregateConfig(memory_limit="300KB"), 0.0, True) is None
    assert not any((tmp_path / "b").iterdir())
    assert aggregate_stream(sim_logs, tmp_path / "b", AggregateConfig(memory_limit="400KB"), 0.0, True) is not None


def test_engines_identical_without_footer_statistics(sim_logs: Path, tmp_path: Path) -> None:
    """No timestamp statistics → the day counters start at one day and grow while streaming."""
    logs = tmp_path / "logs"
    shutil.copytree(sim_logs, logs)
    for f in logs.rglob("*.parquet"):
        pq.write_table(pq.read_table(f), f, write_statistics=False)
    _assert_same(_both(logs, tmp_path))


def test_event_counter_budget() -> None:
    users = ExposureUsers(pa.array(["a", "b"]), ("control",), np.zeros(2, np.int16),
                          np.array([0, DAY_US], dtype=np.int64), 0)
    ts = np.array([0, 5 * DAY_US, DAY_US + 1, -DAY_US], dtype=np.int64)
    grown = EventCounter(users, 3, 1, n_days=1, dtype=np.int32)
    grown.add(np.array([0, 0, 1, 1]), np.zeros(4, np.int8), ts, None, [(0, None)])
    assert grown.running_days == 6 and grown.n_days >= 6
    assert grown._day_view()[0].sum() == 3 and grown.cells[0, :-1].sum() == 4  # one pre-period row
    with pytest.raises(CountersTooLarge):
        small = EventCounter(users, 3, 1, n_days=1, dtype=np.int32, max_bytes=counter_bytes(2, 3, 3, np.int32))
        small.add(np.array([0, 0, 1, 1]), np.zeros(4, np.int8), ts, None, [(0, None)])


def test_string_codes_lookup() -> None:
    keys = pa.array(["u1", "u10", "u1é", "", "a-much-longer-key", "b"])
    codes = StringCodes(keys)
    values = pa.array(["u10", "u1", None, "u1é", "u100", "a-much-longer-key-and-more", "", "b", "zz"])
    assert codes.lookup(values).tolist() == [1, 0, -1, 2, -1, -1, 3, 5, -1]
    dict_values = pa.DictionaryArray.from_arrays(pa.array([2, None, 0, 2], pa.int32()), pa.array(["b", "x", "u1"]))
    assert codes.lookup(dict_values).tolist() == [0, -1, 5, 0]
    mapping = np.array([10, 11, 12, 13, 14, 15], dtype=np.int8)
    assert codes.lookup(dict_values, mapping, default=-7).tolist() == [10, -7, 15, 10]
    nul = StringCodes(pa.array(["a\x00", "a"]))  # NUL bytes: the hash path
    assert nul.lookup(pa.array(["a", "a\x00", "a\x00\x00"])).tolist() == [1, 0, -1]
    assert codes.lookup(pa.array(["u1\x00"])).tolist() == [-1]  # a NUL-padded value is not "u1"


def _variables() -> list[str]:
    return sorted({v for m in resolve_metrics(None) for v in metric_variables(m, False)})


def test_dense_time_series_equals_sql(sim_logs: Path, tmp_path: Path) -> None:
    res = aggregate_logs(sim_logs, tmp_path / "agg", AggregateConfig())
    con = duckdb.connect()
    ran = []

    def spy(*args):
        ran.append(_dense_moments(*args))
        return ran[-1]

    with patch("abtest.timeseries._dense_moments", spy):
        dense = series_moments(con, res.users_path, res.user_days_path, _variables())
    assert ran and ran[0] is not None  # the numpy path ran, no fallback
    sql = series_moments(con, res.users_path, res.user_days_path, _variables(), dense=False)
    assert dense.keys() == sql.keys() and dense == sql  # exact: integer sums


@pytest.mark.parametrize("defect", ["duplicate_day", "two_arms", "null_count"])
def test_malformed_user_days_use_the_sql_path(tmp_path: Path, defect: str) -> None:
    users = pd.DataFrame({"user_id": ["a", "b", "c"], "arm": ["control", "treatment", "control"],
                          "segment": "all", "first_day": [0, 0, 1]})
    days = pd.DataFrame({"user_id": ["a", "a", "b", "c"], "arm": ["control"] * 2 + ["treatment", "control"],
                         "day": [0, 1, 0, 1], "impressions": [3, 4, 5, 6], "clicks": [1, 0, 2, 1],
                         "long_clicks": [1, 0, 1, 0], "searches": [1, 1, 2, 1], "related_searches": [0, 0, 1, 0]})
    if defect == "duplicate_day":
        days.loc[1, "day"] = 0  # two rows for (a, 0): SQL squares each row, dense would square their sum
    elif defect == "two_arms":
        days.loc[1, "arm"] = "treatment"
    else:
        days["clicks"] = days.clicks.astype("Int64")
        days.loc[0, "clicks"] = pd.NA
    users.to_parquet(tmp_path / "users.parquet")
    days.to_parquet(tmp_path / "user_days.parquet")
    con = duckdb.connect()
    args = (con, tmp_path / "users.parquet", tmp_path / "user_days.parquet", _variables())
    assert series_moments(*args) == series_moments(*args, dense=False)


def test_validation_without_footer_statistics(sim_logs: Path, tmp_path: Path) -> None:
    """No statistics → the pyarrow column scan clears clean logs and still catches a NaN dwell."""
    logs = tmp_path / "logs"
    shutil.copytree(sim_logs, logs)
    for f in logs.rglob("*.parquet"):
        pq.write_table(pq.read_table(f), f, write_statistics=False)
    assert values_clean(logs, "clicks") and values_clean(logs, "exposures", ("control", "treatment"))
    f = next((logs / "clicks").glob("*.parquet"))
    t = pq.read_table(f)
    dwell = t["dwell_s"].to_pylist()
    dwell[5] = math.nan
    pq.write_table(t.set_column(t.schema.get_field_index("dwell_s"), "dwell_s", pa.array(dwell)), f)
    assert not values_clean(logs, "clicks")  # NaN never reaches float statistics
    with pytest.raises(LogValidationError) as exc:
        validate_logs(logs)
    assert exc.value.column == "dwell_s" and exc.value.row == 5 and "finite" in str(exc.value)


@pytest.mark.parametrize(("table", "column", "value", "message"), [
    ("impressions", "query", "", "non-empty"), ("impressions", "position", -1, ">= 0"),
    ("searches", "is_related", None, "null"), ("exposures", "arm", "treatmnet", "unknown arm")])
def test_statistics_never_hide_a_bad_value(sim_logs: Path, tmp_path: Path, table: str, column: str, value,
                                           message: str) -> None:
    logs = tmp_path / "logs"
    shutil.copytree(sim_logs, logs)
    f = sorted((logs / table).glob("*.parquet"))[-1]
    t = pq.read_table(f)
    vals = t[column].to_pylist()
    vals[3] = value
    field = t.schema.field(column)
    pq.write_table(t.set_column(t.schema.get_field_index(column), field.with_nullable(True),
                                pa.array(vals, field.type)), f)
    assert not values_clean(logs, table, ("control", "treatment"))
    with pytest.raises(LogValidationError, match=message) as exc:
        validate_logs(logs, arms=("control", "treatment"))
    assert exc.value.file == str(f) and exc.value.row == 3 and exc.value.column == column
