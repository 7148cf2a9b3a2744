"""Operations: the redis CLI, connection errors (down, wrong password), the benchmark's quick mode."""

from __future__ import annotations

import json

import pytest

from encoders.cli.main import main
from encoders.localredis.server import LocalRedis, free_port
from encoders.redis_records.connection import RedisAuthError, RedisUnavailable, connect


def test_redis_cli_start_status_stop(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    port, d = free_port(), tmp_path / "redis"
    assert main(["redis", "start", "--port", str(port), "--dir", str(d)]) == 0
    try:
        assert f"127.0.0.1:{port}" in capsys.readouterr().out
        assert connect(f"127.0.0.1:{port}").ping()
        assert main(["redis", "status", "--port", str(port), "--dir", str(d)]) == 0
        assert "running" in capsys.readouterr().out
        assert main(["redis", "start", "--port", str(port), "--dir", str(d)]) == 2  # already running
        assert "already runs" in capsys.readouterr().err
    finally:
        assert main(["redis", "stop", "--dir", str(d)]) == 0
    assert main(["redis", "status", "--port", str(port), "--dir", str(d)]) == 1
    with pytest.raises(RedisUnavailable, match=f"searchsage redis start --port {port}"):
        connect(f"127.0.0.1:{port}")


def test_wrong_or_missing_password_is_an_auth_error() -> None:
    with LocalRedis(password="s3cret") as server:
        assert connect(server.connection_string).ping()
        with pytest.raises(RedisAuthError, match="refused authentication"):
            connect(f"{server.host}:{server.port},password=wrong")
        with pytest.raises(RedisAuthError, match="SEARCHSAGE_REDIS"):
            connect(f"{server.host}:{server.port}")


def test_benchmark_quick_mode_writes_results(tmp_path) -> None:
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "bench" / "feature_store.py"
    spec = importlib.util.spec_from_file_location("bench_feature_store", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["bench_feature_store"] = mod
    spec.loader.exec_module(mod)
    assert mod.main(["--quick", "--rows", "300", "--repeats", "2", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "feature_store.json").read_text())
    assert all(res["checks"].values()) and len(res["checks"]) == 2  # N=1000 > 300 rows is skipped
    assert set(res["fetch_ms"]) == {"1", "100"}
    assert res["materialize_rows_per_s"]["raw pipelined HSET (same bytes)"] > 0
    assert "feast materialize (ours)" in (tmp_path / "feature_store.md").read_text()
