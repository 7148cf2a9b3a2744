"""Write semantics of the fast path = stock Feast's, as ``skip_dedup`` says.

``skip_dedup: false`` (Feast's default): a row is written only if its event time is newer than the
stored one, so a backfill of an older window never overwrites newer rows; ``true``: last write wins.
Checked against stock Feast (``type: redis`` + the local engine) on the same source, byte for byte,
on one redis-server and on a real 3-master cluster; the real ``feast materialize`` CLI runs ours.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoders.redis_records.connection import connect
from encoders.redis_records.embeddings import EmbeddingStore

FEAST = str(Path(sys.executable).with_name("feast"))
DIM = 8
DB = 11  # a database of the shared redis fixture that no other module uses


def _backend(request: pytest.FixtureRequest, kind: str) -> tuple[str, str]:
    """``(connection string, redis_type)`` of a real redis-server or a real 3-master cluster."""
    if kind == "single":
        return f"{request.getfixturevalue('redis_server').connection_string},db={DB}", "redis"
    return request.getfixturevalue("redis_cluster").connection_string, "redis_cluster"


@pytest.fixture(params=["single", "cluster"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    return _backend(request, request.param)


def _frame(ids: list[str], matrix: np.ndarray, version: str, ts: datetime) -> pd.DataFrame:
    return pd.DataFrame({"pin_id": ids, "embedding": list(matrix), "model_version": version,
                         "event_timestamp": pd.Series([ts] * len(ids), dtype="datetime64[us, UTC]")})


def _snapshot(client: object, keys: list[bytes]) -> list[dict[bytes, bytes]]:
    return [client.hgetall(k) for k in keys]  # type: ignore[attr-defined]


@pytest.mark.parametrize(("kind", "skip_dedup"), [("single", False), ("single", True), ("cluster", False)],
                         ids=["single-skip_dedup=false", "single-skip_dedup=true", "cluster-skip_dedup=false"])
def test_a_backfill_of_an_older_window_follows_skip_dedup_exactly_like_stock_feast(
    kind: str, skip_dedup: bool, tmp_path: Path, embedding_repo, request: pytest.FixtureRequest
) -> None:
    conn, redis_type = _backend(request, kind)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rng = np.random.default_rng(7)
    newer, older = rng.standard_normal((30, DIM), dtype=np.float32), rng.standard_normal((30, DIM), dtype=np.float32)
    new_ids, old_ids = [f"k{i}" for i in range(30)], [f"k{i}" for i in range(10, 40)]
    source = pd.concat([_frame(new_ids, newer, "new", now - timedelta(hours=1)),
                        _frame(old_ids, older, "old", now - timedelta(hours=30))], ignore_index=True)
    ids = [f"k{i}" for i in range(40)]
    client = connect(conn, redis_type)
    snapshots = []
    for ours in (False, True):
        repo = tmp_path / ("ours" if ours else "stock")
        fs = embedding_repo(repo, conn, DIM, ours=ours, redis_type=redis_type, skip_dedup=skip_dedup, batch_rows=7)
        source.to_parquet(repo / "emb.parquet")
        keys = EmbeddingStore.from_config(fs.config, fs.get_feature_view("emb"), client=client).redis_keys(ids)
        for k in keys:
            client.delete(k)
        windows = [(now - timedelta(hours=2), now), (now - timedelta(hours=48), now - timedelta(hours=2))]
        for start, end in windows:  # the recent window first, then the backfill of an older one
            if ours:
                run = subprocess.run([FEAST, "-c", str(repo), "materialize", start.isoformat(), end.isoformat()],
                                     capture_output=True, text=True, timeout=300)
                assert run.returncode == 0, run.stderr[-3000:]
            else:
                fs.materialize(start_date=start, end_date=end)
        snapshots.append(_snapshot(client, keys))
        for k in keys:
            client.delete(k)
    stock, ours_snap = snapshots
    assert ours_snap == stock, "the fast path must leave exactly the records stock Feast leaves"
    # and what those records are:
    assert all(len(h) == 3 for h in stock)  # _ts, embedding, model_version
    from encoders.redis_records import codec

    emb_field = codec.feature_field("emb", "embedding")
    got = np.stack([codec.decode_float_lists([h[emb_field]], DIM)[0][0] for h in ours_snap])
    kept_new = 30 if not skip_dedup else 10  # skip_dedup=true: the backfill overwrote k10..k29
    assert got[:kept_new].tobytes() == newer[:kept_new].tobytes()
    assert got[kept_new:].tobytes() == older[kept_new - 10:].tobytes()


def test_embedding_store_write_keeps_the_newer_row_and_counts_what_it_wrote(backend: tuple[str, str]) -> None:
    conn, redis_type = backend
    client = connect(conn, redis_type)
    store = EmbeddingStore(client=client, project="semw", feature_view="emb", join_key="pin_id", dim=4,
                           key_ttl_seconds=600, skip_dedup=False)
    keys = ["a", "b", "c"]
    for k in store.redis_keys(keys):
        client.delete(k)
    m = np.arange(40, dtype=np.float32).reshape(10, 4)
    t1 = datetime(2030, 1, 1, 12, 0, 0, 500, tzinfo=timezone.utc)
    us = timedelta(microseconds=1)
    assert store.write(["a", "b"], m[:2], "v1", t1) == 2
    assert store.write(["a", "b"], m[2:4], "v0", [t1 - us, t1]) == 0  # older, and equal: both skipped
    got, found, versions = store.fetch_with_versions(["a", "b"])
    assert found.all() and got.tobytes() == m[:2].tobytes() and versions == ["v1", "v1"]
    far = datetime(2200, 6, 1, tzinfo=timezone.utc)  # seconds need a 5-byte varint
    assert store.write(["a", "b"], m[4:6], "v2", [t1 + us, far]) == 2
    assert store.write(["b"], m[6:7], "v3", far - us) == 0
    # two rows for one key in one call: each is compared with what the previous one left
    assert store.write(["c", "c"], m[7:9], "v4", [t1 + timedelta(seconds=2), t1 + timedelta(seconds=1)]) == 1
    got, found, versions = store.fetch_with_versions(keys)
    assert got.tobytes() == np.concatenate([m[4:6], m[7:8]]).tobytes() and versions == ["v2", "v2", "v4"]
    assert all(0 < client.ttl(k) <= 600 for k in store.redis_keys(keys))
    # skip_dedup=True: last write wins, even with an older event time
    assert dataclasses.replace(store, skip_dedup=True).write(["b"], m[9:10], "old", t1 - timedelta(days=9)) == 1
    assert store.fetch(["b"])[0].tobytes() == m[9:10].tobytes()
    for k in store.redis_keys(keys):
        client.delete(k)


def test_the_server_side_comparison_orders_timestamps_like_feast(redis_server) -> None:
    """Random (seconds, nanos) pairs, including equal seconds and multi-byte varints: the Lua
    comparison writes exactly when Feast's ``new_total_nanos > prev_total_nanos`` would."""
    from encoders.redis_records import codec

    client = connect(f"{redis_server.connection_string},db={DB}")
    store = EmbeddingStore(client=client, project="semlua", feature_view="emb", join_key="pin_id", dim=1,
                           skip_dedup=False)
    rng = np.random.default_rng(11)
    n = 300
    sec = rng.integers(1, 2**34, size=(n, 2))
    sec[: n // 3, 1] = sec[: n // 3, 0]  # a third with equal seconds: decided by nanos
    nanos = rng.integers(0, 1_000_000, size=(n, 2)) * 1000
    nanos[: n // 10, 1] = nanos[: n // 10, 0]  # some fully equal
    keys = store.redis_keys([f"r{i}" for i in range(n)])
    vals = codec.encode_float_list(np.zeros((n, 1), dtype=np.float32))
    mvs = [codec.encode_string_value("x")] * n
    first = [codec.encode_timestamp_parts(int(s), int(ns)) for s, ns in zip(sec[:, 0], nanos[:, 0], strict=True)]
    second = [codec.encode_timestamp_parts(int(s), int(ns)) for s, ns in zip(sec[:, 1], nanos[:, 1], strict=True)]
    for k in keys:
        client.delete(k)
    assert store.write_encoded(keys, vals, mvs, first) == n
    wrote = [store.write_encoded([k], [v], [mv], [t]) for k, v, mv, t in zip(keys, vals, mvs, second, strict=True)]
    feast_rule = [int(s1 * 10**9 + n1 > s0 * 10**9 + n0) for (s0, s1), (n0, n1) in zip(sec.tolist(), nanos.tolist(),
                                                                                         strict=True)]
    assert wrote == feast_rule and 0 < sum(wrote) < n
    client.delete(*keys)
