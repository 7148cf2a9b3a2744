"""The demo's online-store choice: a set SEARCHSAGE_REDIS must answer; no redis-server → SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

from encoders.demo import online_store
from encoders.localredis.server import free_port
from encoders.redis_records.connection import RedisUnavailable


def test_configured_redis_is_used_when_it_answers(redis_server, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SEARCHSAGE_REDIS", redis_server.connection_string)
    choice = online_store.choose_online_store(tmp_path)
    assert (choice.kind, choice.connection_string, choice.started_here) == ("redis", redis_server.connection_string, False)


def test_configured_redis_that_is_down_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    port = free_port()
    monkeypatch.setenv("SEARCHSAGE_REDIS", f"127.0.0.1:{port}")
    with pytest.raises(RedisUnavailable, match=f"127.0.0.1:{port} does not answer PING"):
        online_store.choose_online_store(tmp_path)


def test_without_redis_server_the_demo_falls_back_to_sqlite(tmp_path: Path, monkeypatch) -> None:
    # A machine without redis-server cannot be made here; only the binary lookup is replaced.
    import encoders.localredis.server as rs

    def missing() -> str:
        raise RedisUnavailable("redis-server is not installed; install it with `sudo apt-get install -y redis-server`")

    monkeypatch.delenv("SEARCHSAGE_REDIS", raising=False)
    monkeypatch.setattr(rs, "redis_server_binary", missing)
    monkeypatch.setattr(online_store, "_answers_ping", lambda *a, **k: False)
    choice = online_store.choose_online_store(tmp_path)
    assert choice.kind == "sqlite" and "apt-get install -y redis-server" in choice.message
