"""Malformed event logs give clear errors naming the file, column and row."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abtest.logs import LogValidationError, validate_logs
from abtest.simulate.engine import SimConfig, synthetic_arena
from abtest.simulate.writer import write_simulated_logs


@pytest.fixture(scope="module")
def small_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("logs")
    write_simulated_logs(synthetic_arena(n_queries=50, n_pins=500), SimConfig(n_users=200, days=3, pre_days=2),
                         out, progress=False)
    return out


def _copy_with(src: Path, dst: Path, table: str, change) -> Path:
    import shutil

    shutil.copytree(src, dst)
    f = next((dst / table).glob("*.parquet"))
    pq.write_table(change(pq.read_table(f)), f)
    return f


def test_valid_logs_pass(small_logs: Path) -> None:
    files = validate_logs(small_logs, arms=("control", "treatment"))
    assert set(files) == {"exposures", "impressions", "clicks", "searches"}


def test_missing_column_names_file_and_column(small_logs: Path, tmp_path: Path) -> None:
    f = _copy_with(small_logs, tmp_path / "l", "clicks", lambda t: t.drop(["dwell_s"]))
    with pytest.raises(LogValidationError) as exc:
        validate_logs(tmp_path / "l")
    msg = str(exc.value)
    assert str(f) in msg and "column 'dwell_s'" in msg and "missing required column" in msg


def test_negative_dwell_names_row(small_logs: Path, tmp_path: Path) -> None:
    def neg(t: pa.Table) -> pa.Table:
        d = t.column("dwell_s").to_pylist()
        d[7] = -3.0
        return t.set_column(t.schema.get_field_index("dwell_s"), "dwell_s", pa.array(d, pa.float64()))

    f = _copy_with(small_logs, tmp_path / "l", "clicks", neg)
    with pytest.raises(LogValidationError) as exc:
        validate_logs(tmp_path / "l")
    assert exc.value.file == str(f) and exc.value.column == "dwell_s" and exc.value.row == 7
    assert "negative dwell" in str(exc.value) and "-3.0" in str(exc.value)


def test_unknown_arm(small_logs: Path, tmp_path: Path) -> None:
    def rename(t: pa.Table) -> pa.Table:
        arms = t.column("arm").to_pylist()
        arms[4] = "treatmnet"
        return t.set_column(t.schema.get_field_index("arm"), "arm", pa.array(arms, pa.string()))

    _copy_with(small_logs, tmp_path / "l", "exposures", rename)
    with pytest.raises(LogValidationError) as exc:
        validate_logs(tmp_path / "l", arms=("control", "treatment"))
    assert exc.value.column == "arm" and exc.value.row == 4 and "'treatmnet'" in str(exc.value)


def test_empty_arm(small_logs: Path, tmp_path: Path) -> None:
    _copy_with(small_logs, tmp_path / "l", "exposures", lambda t: t.filter(pa.compute.equal(t["arm"], "control")))
    with pytest.raises(LogValidationError, match="arm 'treatment' has no exposed users"):
        validate_logs(tmp_path / "l", arms=("control", "treatment"))


def test_null_and_wrong_type(small_logs: Path, tmp_path: Path) -> None:
    def null_user(t: pa.Table) -> pa.Table:
        u = t.column("user_id").to_pylist()
        u[2] = None
        return t.set_column(0, "user_id", pa.array(u, pa.string()))

    _copy_with(small_logs, tmp_path / "a", "searches", null_user)
    with pytest.raises(LogValidationError) as exc:
        validate_logs(tmp_path / "a")
    assert exc.value.column == "user_id" and exc.value.row == 2 and "null" in str(exc.value)

    def str_pos(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("position")
        return t.set_column(i, "position", t.column("position").cast(pa.string()))

    _copy_with(small_logs, tmp_path / "b", "impressions", str_pos)
    with pytest.raises(LogValidationError, match=r"column 'position'.*expected a integer column"):
        validate_logs(tmp_path / "b")


def test_missing_table(tmp_path: Path) -> None:
    with pytest.raises(LogValidationError, match="missing the exposures log"):
        validate_logs(tmp_path)
