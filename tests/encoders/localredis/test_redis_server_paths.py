"""``searchsage redis start|stop|status`` find the same server from any working directory: absolute pid
and log paths (redis-server changes into its --dir), a per-port default directory, the port of
$SEARCHSAGE_REDIS when --port is not given."""

from __future__ import annotations

from pathlib import Path

import pytest

from encoders.cli.main import main
from encoders.localredis.server import LocalRedis, free_port, ping, port_from_env
from encoders.redis_records.connection import RedisUnavailable, connect


def test_start_here_stop_there(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    monkeypatch.setenv("SEARCHSAGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEARCHSAGE_REDIS", f"localhost:{port}")
    (tmp_path / "a").mkdir()
    (tmp_path / "b" / "deeper").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "a")
    assert main(["redis", "start"]) == 0  # the port of $SEARCHSAGE_REDIS
    try:
        d = tmp_path / "home" / "redis" / str(port)
        assert (d / "redis.pid").is_file() and (d / "redis.log").is_file()
        assert not (tmp_path / "a" / ".searchsage").exists()
        assert connect(f"127.0.0.1:{port}").ping()
        monkeypatch.chdir(tmp_path / "b" / "deeper")
        assert main(["redis", "status", "--port", str(port)]) == 0
        assert "running" in capsys.readouterr().out
    finally:
        assert main(["redis", "stop", "--port", str(port)]) == 0
    assert "stopped redis-server pid" in capsys.readouterr().out
    assert not ping("127.0.0.1", port)
    assert main(["redis", "status"]) == 1


def test_relative_dir_puts_the_pid_file_in_that_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with LocalRedis(directory=Path("rel") / "redis") as server:
        assert (tmp_path / "rel" / "redis" / "redis.pid").is_file()
        assert server.directory == (tmp_path / "rel" / "redis")
        assert not (tmp_path / "rel" / "redis" / "rel").exists()  # not dir/dir/redis.pid
    monkeypatch.chdir(tmp_path)
    port = free_port()
    assert main(["redis", "start", "--port", str(port), "--dir", "rel2"]) == 0
    monkeypatch.chdir(tmp_path / "rel")
    assert main(["redis", "stop", "--port", str(port), "--dir", str(tmp_path / "rel2")]) == 0
    assert not ping("127.0.0.1", port)


def test_stop_says_when_something_else_holds_the_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SEARCHSAGE_HOME", str(tmp_path))
    with LocalRedis() as other:
        assert main(["redis", "stop", "--port", str(other.port)]) == 2
        assert "something answers on 127.0.0.1" in capsys.readouterr().err
        assert ping("127.0.0.1", other.port)


def test_port_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEARCHSAGE_REDIS", raising=False)
    assert port_from_env() == 6379
    for conn, port in (("127.0.0.1:7000", 7000), ("localhost:7001,password=x,db=2", 7001),
                       ("redis://:pw@localhost:7002/0", 7002), ("localhost", 6379)):
        monkeypatch.setenv("SEARCHSAGE_REDIS", conn)
        assert port_from_env() == port
    monkeypatch.setenv("SEARCHSAGE_REDIS", "redis-0.prod:6379")
    with pytest.raises(RedisUnavailable, match=r"only runs servers on 127\.0\.0\.1"):
        port_from_env()
