"""Redis Sentinel, live: a real redis-server master watched by a real sentinel (``redis-server
--sentinel``); Feast materialisation, stock reads, the fast fetch and the serving store all reach the
master through the sentinel, like ``redis_type: redis_sentinel`` says."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from encoders.localredis.server import LocalRedis, free_port, redis_server_binary
from encoders.redis_records.connection import RedisUnavailable, connect, is_cluster
from encoders.redis_records.embeddings import EmbeddingStore

MASTER = "searchsage-master"


@pytest.fixture(scope="module")
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    d = tmp_path_factory.mktemp("sentinel")
    with LocalRedis() as master:
        port = free_port()
        conf = d / "sentinel.conf"  # sentinel rewrites its config file: it must be writable
        conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {d}\nsentinel monitor {MASTER} 127.0.0.1 {master.port} 1\n")
        log = open(d / "sentinel.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen([redis_server_binary(), str(conf), "--sentinel"], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    addr = redis.Redis(port=port).execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)
                    if addr:
                        break
                except redis.ConnectionError:
                    pass
                assert time.monotonic() < deadline, f"sentinel did not start; see {d / 'sentinel.log'}"
                time.sleep(0.05)
            yield {"conn": f"127.0.0.1:{port}", "master": master}
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_the_factory_reaches_the_master_the_sentinel_names(sentinel: dict) -> None:
    client = connect(sentinel["conn"], "redis_sentinel", sentinel_master=MASTER)
    assert not is_cluster(client)
    client.set("via-sentinel", b"yes")
    assert redis.Redis(port=sentinel["master"].port).get("via-sentinel") == b"yes"  # landed on the master
    with pytest.raises(RedisUnavailable, match=r"cannot reach Redis at 127\.0\.0\.1"):
        connect(sentinel["conn"], "redis_sentinel", sentinel_master="no-such-master")


def test_feast_materialises_and_every_reader_agrees_through_the_sentinel(
    sentinel: dict, tmp_path: Path, embedding_repo
) -> None:
    from encoders.serving.store import make_query_store

    repo = tmp_path / "repo"
    fs = embedding_repo(repo, sentinel["conn"], 8, redis_type="redis_sentinel", skip_dedup=False,
                        sentinel_master=MASTER, project="searchsage")
    ids = [f"s{i}" for i in range(20)]
    m = np.random.default_rng(2).standard_normal((20, 8), dtype=np.float32)
    now = datetime.now(timezone.utc)
    pd.DataFrame({"pin_id": ids, "embedding": list(m), "model_version": "v1",
                  "event_timestamp": pd.Series([now - timedelta(minutes=5)] * 20, dtype="datetime64[us, UTC]")}
                 ).to_parquet(repo / "emb.parquet")
    fs.materialize(start_date=now - timedelta(hours=1), end_date=now)
    fast = EmbeddingStore.from_store(fs, "emb")
    matrix, found = fast.fetch([*ids, "absent"])
    assert found.tolist() == [True] * 20 + [False] and matrix[:20].tobytes() == m.tobytes()
    stock = fs.get_online_features(features=["emb:embedding"], entity_rows=[{"pin_id": p} for p in ids]).to_dict()
    assert np.asarray(stock["embedding"], dtype=np.float32).tobytes() == m.tobytes()
    assert fast.write(ids[:2], m[:2] * 2, "v0", now - timedelta(days=1)) == 0  # skip_dedup: false, honoured
    # the serving store from the same repository: project, sentinel and master name from the YAML
    cache = make_query_store(None, dim=8, repo=repo)
    cache.write(["lamp"], m[:1], "v9")
    assert cache.fetch_current(["lamp"], "v9")[1].tolist() == [True]
    assert redis.Redis(port=sentinel["master"].port).exists(cache.store.redis_keys(["lamp"])[0]) == 1
