"""Faults with a real redis-server: Redis killed in the middle of ``feast materialize-incremental``
(then restarted and the run repeated), a bad record among good ones, a password in a repr."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import redis

from encoders.localredis.server import LocalRedis, free_port, redis_server_binary
from encoders.redis_records import codec
from encoders.redis_records.connection import connect
from encoders.redis_records.embeddings import EmbeddingStore

FEAST = str(Path(sys.executable).with_name("feast"))
DIM = 64
ROWS = 6000  # distinct keys; with 10-row write batches there is a long middle to kill Redis in
STALE = 500  # older rows of some of those keys, which dedup must drop


class DurableRedis:
    """A redis-server on 127.0.0.1 with ``appendfsync always``: what it acknowledged survives SIGKILL."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DurableRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 20
        while True:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=0.2).ping():
                    return self
            except redis.ConnectionError:  # refused, or LOADING the AOF (BusyLoadingError)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    @property
    def connection_string(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture()
def durable(tmp_path: Path) -> Iterator[DurableRedis]:
    server = DurableRedis(tmp_path / "redis", free_port()).start()
    try:
        yield server
    finally:
        server.kill()


def _source(now: datetime) -> tuple[pd.DataFrame, dict[str, tuple[np.ndarray, str, datetime]]]:
    rng = np.random.default_rng(5)
    ids = [f"pin-{i}" for i in range(ROWS)]
    latest = rng.standard_normal((ROWS, DIM), dtype=np.float32)
    stamps = [now - timedelta(minutes=10 + i % 50) for i in range(ROWS)]
    stale_ids = ids[:: ROWS // STALE][:STALE]
    stale = rng.standard_normal((len(stale_ids), DIM), dtype=np.float32)
    frame = pd.DataFrame({
        "pin_id": ids + stale_ids,
        "embedding": list(latest) + list(stale),
        "model_version": ["v-new"] * ROWS + ["v-old"] * len(stale_ids),
        "event_timestamp": pd.Series(stamps + [now - timedelta(days=2)] * len(stale_ids), dtype="datetime64[us, UTC]"),
    }).sample(frac=1.0, random_state=3)  # source order must not matter
    return frame, {k: (latest[i], "v-new", stamps[i]) for i, k in enumerate(ids)}


def _check_records(client: redis.Redis, store: EmbeddingStore, expected: dict) -> int:
    """Every record present is whole and exactly the expected one; returns how many are present."""
    ids = list(expected)
    keys = store.redis_keys(ids)
    emb_f, mv_f, ts_f = (codec.feature_field("emb", "embedding"), codec.feature_field("emb", "model_version"),
                         codec.timestamp_field("emb"))
    with client.pipeline(transaction=False) as pipe:
        for k in keys:
            pipe.hgetall(k)
        records = pipe.execute()
    present = 0
    for pin, rec in zip(ids, records, strict=True):
        if not rec:
            continue
        present += 1
        vec, version, ts = expected[pin]
        assert set(rec) == {emb_f, mv_f, ts_f}, f"{pin}: partial record {sorted(rec)}"
        matrix, found = codec.decode_float_lists([rec[emb_f]], DIM)  # strict: a torn vector raises
        assert found[0] and matrix[0].tobytes() == vec.tobytes(), f"{pin}: wrong or partial vector"
        assert rec[mv_f] == codec.encode_string_value(version) and rec[ts_f] == codec.encode_timestamp(ts)
    return present


def test_redis_killed_mid_materialize_incremental_then_a_rerun_gives_exactly_the_rows(
    tmp_path: Path, durable: DurableRedis, embedding_repo
) -> None:
    now = datetime.now(timezone.utc).replace(microsecond=0)
    repo = tmp_path / "repo"
    fs = embedding_repo(repo, durable.connection_string, DIM, skip_dedup=False, batch_rows=10)
    frame, expected = _source(now)
    frame.to_parquet(repo / "emb.parquet")
    client = redis.Redis(port=durable.port)
    store = EmbeddingStore.from_config(fs.config, fs.get_feature_view("emb"), client=client)
    end = (now + timedelta(seconds=1)).isoformat()

    run = subprocess.Popen([FEAST, "-c", str(repo), "materialize-incremental", end],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = 0
    while run.poll() is None and seen < ROWS // 5:
        try:
            seen = int(client.dbsize())
        except redis.ConnectionError:
            break
        time.sleep(0.001)
    durable.kill()  # SIGKILL, in the middle of the writes
    out, err = run.communicate(timeout=300)
    assert 0 < seen < ROWS, f"Redis was not killed in the middle (saw {seen} of {ROWS} rows)"
    assert run.returncode != 0, "materialisation must fail when Redis dies under it"
    assert "cannot reach Redis at 127.0.0.1" in err + out, err[-2000:]

    durable.start()  # same port, same directory: the AOF holds what was acknowledged
    client = redis.Redis(port=durable.port)
    partial = _check_records(client, store, expected)
    assert seen <= partial < ROWS and client.dbsize() == partial, (seen, partial)

    rerun = subprocess.run([FEAST, "-c", str(repo), "materialize-incremental", end],
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert client.dbsize() == ROWS  # one record per key: no duplicates, no leftovers
    assert _check_records(client, store, expected) == ROWS
    matrix, found = store.fetch(list(expected))
    assert found.all() and matrix.tobytes() == np.stack([v for v, _, _ in expected.values()]).tobytes()
    # the stock reader agrees on a sample
    sample = list(expected)[:: ROWS // 20]
    stock = fs.get_online_features(features=["emb:embedding", "emb:model_version"],
                                   entity_rows=[{"pin_id": p} for p in sample]).to_dict()
    assert np.asarray(stock["embedding"], dtype=np.float32).tobytes() == store.fetch(sample)[0].tobytes()
    assert set(stock["model_version"]) == {"v-new"}


def test_a_bad_row_is_not_found_and_never_fails_the_other_rows(redis_server: LocalRedis) -> None:
    client = connect(f"{redis_server.connection_string},db=12")
    store = EmbeddingStore(client=client, project="faults", feature_view="emb", join_key="pin_id", dim=4)
    ids = ["good-1", "torn", "other-d", "not-a-float-list", "good-2", "absent"]
    client.delete(*store.redis_keys(ids))
    m = np.arange(24, dtype=np.float32).reshape(6, 4)
    store.write(ids[:5], m[:5], "v1")
    emb_f = codec.feature_field("emb", "embedding")
    torn_key, bad_key = store.redis_keys(["torn", "not-a-float-list"])
    client.hset(torn_key, emb_f, codec.encode_float_list(m[1:2])[0][:-3])  # a vector cut short
    store_3d = EmbeddingStore(client=client, project="faults", feature_view="emb", join_key="pin_id", dim=3)
    store_3d.write(["other-d"], m[2:3, :3], "v1")  # written with another D
    client.hset(bad_key, emb_f, codec.encode_string_value("hello"))  # another type
    with pytest.raises(codec.RecordDecodeError):  # the codec itself stays strict by default
        codec.decode_float_lists([client.hget(k, emb_f) for k in store.redis_keys(ids[:2])], 4)
    matrix, found = store.fetch(ids)
    assert found.tolist() == [True, False, False, False, True, False]
    assert matrix[[0, 4]].tobytes() == m[[0, 4]].tobytes() and not matrix[[1, 2, 3, 5]].any()
    matrix2, found2, versions = store.fetch_with_versions(ids)
    assert found2.tolist() == found.tolist() and matrix2.tobytes() == matrix.tobytes() and versions[0] == "v1"
    client.delete(*store.redis_keys(ids))


def test_the_embedding_store_repr_never_shows_the_password(tmp_path: Path, embedding_repo) -> None:
    secret = "hunter2-s3cret"
    with LocalRedis(password=secret) as server:
        fs = embedding_repo(tmp_path / "repo", server.connection_string, 4)
        store = EmbeddingStore.from_store(fs, "emb")
        assert store.fetch(["x"])[1].tolist() == [False]  # the password works
        assert secret in store.connection
        assert secret not in repr(store) and secret not in str(store)
        assert "EmbeddingStore(" in repr(store) and "feature_view='emb'" in repr(store)
