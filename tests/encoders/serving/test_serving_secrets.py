"""The Redis password never shows: errors, /health, /metrics (JSON, Prometheus labels), logs, CLI.

Against a real password-protected redis-server (``--requirepass``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import call, http, running, wait_until

from encoders.localredis.server import LocalRedis, free_port
from encoders.redis_records.connection import (
    RedisUnavailable,
    connect,
    parse_connection_string,
    redact_secrets,
)
from encoders.serving.config import ServeConfig, ServeConfigError
from encoders.serving.server import build_app
from encoders.serving.store import make_query_store, redis_client

SECRET = "s3cret-Pw-4242"
WRONG = "wrong-Pw-9191"


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[LocalRedis]:
    with LocalRedis(password=SECRET) as server:
        yield server


def test_redaction_covers_both_connection_string_forms_and_parsing_never_quotes_the_password() -> None:
    cases = {
        f"10.0.0.5:6379,password={SECRET},db=2": "10.0.0.5:6379,password=***,db=2",
        f"redis://:{SECRET}@cache.internal:6380/1": "redis://:***@cache.internal:6380/1",
        f"rediss://svc:{SECRET}@cache.internal": "rediss://svc:***@cache.internal",
        f"redis://cache.internal:6379?password={SECRET}": "redis://cache.internal:6379?password=***",
    }
    for conn, shown in cases.items():
        assert redact_secrets(conn) == shown
        target = parse_connection_string(conn)
        assert target.params["password"] == SECRET and SECRET not in repr(target)
    url = parse_connection_string(f"redis://user:{SECRET}@h:7000/3")
    assert url.nodes == [("h", 7000)] and url.params == {"username": "user", "password": SECRET, "db": 3}
    assert redact_secrets(f"auth failed for {SECRET}!", f"h:1,password={SECRET}") == "auth failed for ***!"
    assert redact_secrets(f"{{'password': '{SECRET}', 'db': 0}}") == "{'password': '***', 'db': 0}"
    for bad in (f"nohost,password={SECRET}", f"redis://:{SECRET}@h:notaport", f"ftp://:{SECRET}@h:1"):
        with pytest.raises(ValueError) as exc:
            parse_connection_string(bad)
        assert SECRET not in str(exc.value) and "***" in str(exc.value)
    with pytest.raises(ServeConfigError) as exc2:
        redis_client(f"nohost,password={SECRET}")
    assert SECRET not in str(exc2.value)
    assert SECRET not in json.dumps(ServeConfig(bundle=Path("b"), redis=f"h:1,password={SECRET}").to_dict())


def test_a_url_with_the_right_password_works_and_health_and_metrics_show_it_redacted(
    tiny_onnx_bundle: Path, locked_redis: LocalRedis
) -> None:
    conn = f"redis://:{SECRET}@127.0.0.1:{locked_redis.port}/0"
    store = make_query_store(conn, dim=4)
    store.write(["lamp"], np.ones((1, 4), dtype=np.float32), "v1")
    assert store.fetch_current(["lamp"], "v1")[1].tolist() == [True]
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=conn)
    with running(build_app(cfg)) as port:
        assert call(port, "POST", "/embed", {"queries": ["lamp shade"]})[0] == 200
        health = http(port, "GET", "/health")[2].decode()
        metrics = http(port, "GET", "/metrics")[2].decode()
        prom = http(port, "GET", "/metrics?format=prometheus")[2].decode()
    assert json.loads(health)["store"]["state"] == "ok"
    assert json.loads(health)["store"]["address"] == f"redis://:***@127.0.0.1:{locked_redis.port}/0"
    assert f'searchsage_serve_store_up{{address="redis://:***@127.0.0.1:{locked_redis.port}/0"}} 1' in prom
    for surface in (health, metrics, prom):
        assert SECRET not in surface


@pytest.mark.parametrize("form", ["feast", "url"])
def test_a_wrong_password_degrades_without_showing_it_in_health_metrics_or_logs(
    tiny_onnx_bundle: Path, locked_redis: LocalRedis, caplog: pytest.LogCaptureFixture, form: str
) -> None:
    port_r = locked_redis.port
    conn = f"127.0.0.1:{port_r},password={WRONG}" if form == "feast" else f"redis://:{WRONG}@127.0.0.1:{port_r}"
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=conn,
                      retry_initial_s=0.1, retry_max_s=0.2)
    with caplog.at_level(logging.WARNING, logger="searchsage.serve"), running(build_app(cfg)) as port:
        assert call(port, "POST", "/embed", {"queries": ["lamp shade"]})[0] == 200
        assert wait_until(lambda: call(port, "GET", "/health")[1]["store"]["consecutive_failures"] >= 2)
        health = http(port, "GET", "/health")[2].decode()
        metrics = http(port, "GET", "/metrics")[2].decode()
        prom = http(port, "GET", "/metrics?format=prometheus")[2].decode()
    state = json.loads(health)
    assert state["status"] == "degraded" and "refused authentication" in state["store"]["last_error"]
    assert "store_up{address=" in prom and prom.count("} 0\n") >= 1
    logs = "\n".join(r.getMessage() for r in caplog.records)
    assert "is down" in logs
    for surface in (health, metrics, prom, logs):
        assert WRONG not in surface and SECRET not in surface


def test_cli_and_connection_errors_never_print_the_password(
    tiny_onnx_bundle: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from encoders.cli.main import main

    assert main(["serve", "--bundle", str(tiny_onnx_bundle), "--redis", f"nohost,password={SECRET}"]) == 2
    err = capsys.readouterr().err
    assert "expected host:port" in err and SECRET not in err and "password=***" in err
    closed = free_port()
    monkeypatch.setenv("SEARCHSAGE_REDIS", f"127.0.0.1:{closed},password={SECRET}")
    with pytest.raises(RedisUnavailable) as exc:
        connect(f"127.0.0.1:{closed},password={SECRET}")
    assert "cannot reach Redis" in str(exc.value) and SECRET not in str(exc.value)
    assert "password=***" in str(exc.value)
