"""Cache-through against a real redis-server: write-back, hits, stale versions, degraded mode."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import numpy as np
import redis
from serving_helpers import call, running, wait_until

from encoders.localredis.server import LocalRedis
from encoders.redis_records.embeddings import EmbeddingStore
from encoders.runtime import BundleEncoder, BundleManifest, resolve_tower_dir
from encoders.serving.config import ServeConfig
from encoders.serving.server import build_app, build_service
from encoders.serving.store import QUERY_JOIN_KEY, QUERY_VIEW, make_query_store, redis_client


def feature_store_reader(conn: str, dim: int, project: str = "searchsage") -> EmbeddingStore:
    """The feature-store package's own reader of the query_embedding records."""
    return EmbeddingStore(
        client=redis_client(conn), project=project, feature_view=QUERY_VIEW, join_key=QUERY_JOIN_KEY, dim=dim
    )


def test_misses_are_written_back_and_the_next_request_is_a_hit(
    tiny_onnx_bundle: Path, redis_server: LocalRedis, tmp_path: Path
) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    enc = BundleEncoder(tiny_onnx_bundle, threads=1)
    reader = feature_store_reader(redis_server.connection_string, enc.dim)
    versioned = make_query_store(redis_server.connection_string, enc.dim)  # compares model_version bytes
    # an entry from an older model must not be served: it is a miss and gets overwritten
    reader.write(["garden hose"], np.ones((1, enc.dim), dtype=np.float32), model_version="old-model")
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=redis_server.connection_string)
    with running(build_app(cfg)) as port:
        s1, first = call(port, "POST", "/embed", {"queries": ["Angle  Bracket", "garden hose", "angle bracket"]})
        assert s1 == 200 and first["cached"] == [False, False, False]
        written = wait_until(
            lambda: bool(versioned.fetch_current(["angle bracket", "garden hose"], enc.model_version)[1].all())
        )
        assert written, "write-back did not reach Redis"
        s2, second = call(port, "POST", "/embed", {"queries": ["ANGLE BRACKET", "garden hose", "red chair"]})
        _, metrics = call(port, "GET", "/metrics")
    assert s2 == 200 and second["cached"] == [True, True, False]
    first_m = np.asarray(first["embeddings"], dtype=np.float32)
    second_m = np.asarray(second["embeddings"], dtype=np.float32)
    np.testing.assert_array_equal(second_m[0], first_m[0])  # served from Redis, bit-identical
    np.testing.assert_array_equal(first_m[0], first_m[2])   # same key, same row
    matrix, found = reader.fetch(["angle bracket", "garden hose"])
    assert found.all()
    np.testing.assert_array_equal(matrix[0], first_m[0])
    np.testing.assert_allclose(matrix[1], enc.encode(["garden hose"])[0], atol=1e-5)
    cache = metrics["cache"]
    assert cache["hits"] == 2 and cache["stale"] == 1 and cache["writes"] >= 2
    assert 0 < cache["hit_rate"] < 1


def test_repo_settings_pick_the_project_and_connection(tiny_onnx_bundle: Path, redis_server: LocalRedis,
                                                      tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(
        f"project: otherproj\nonline_store:\n  type: redis\n  connection_string: {redis_server.connection_string}\n"
    )
    store = make_query_store(None, dim=4, repo=repo)
    store.write(["lamp"], np.full((1, 4), 0.5, dtype=np.float32), "v1")
    matrix, found, stale = store.fetch_current(["lamp", "absent"], "v1")
    assert found.tolist() == [True, False] and stale == 0 and matrix[0].tolist() == [0.5] * 4
    assert store.fetch_current(["lamp"], "v2")[1].tolist() == [False]
    assert feature_store_reader(redis_server.connection_string, 4, "otherproj").fetch(["lamp"])[1].all()


def test_redis_down_degrades_health_keeps_answering_and_recovers(tiny_onnx_bundle: Path) -> None:
    local = LocalRedis().start()
    port_r = local.port
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, redis=local.connection_string,
                      retry_initial_s=0.2, retry_max_s=0.4)
    try:
        with running(build_app(cfg)) as port:
            assert call(port, "GET", "/health")[1]["status"] == "ok"
            local.stop()
            t0 = time.perf_counter()
            statuses = [call(port, "POST", "/embed", {"queries": [f"shelf {i}"]})[0] for i in range(5)]
            elapsed = time.perf_counter() - t0
            assert statuses == [200] * 5
            assert elapsed < 3.0, f"5 requests with Redis down took {elapsed:.2f}s"
            _, health = call(port, "GET", "/health")
            assert health["status"] == "degraded" and health["store"]["state"] == "down"
            assert health["store"]["last_error"]
            _, metrics = call(port, "GET", "/metrics")
            assert metrics["cache"]["bypassed"] >= 4 and metrics["cache"]["store_errors"] >= 1
            local = LocalRedis(port=port_r).start()
            assert wait_until(lambda: call(port, "GET", "/health")[1]["status"] == "ok", timeout_s=8)
            status, body = call(port, "POST", "/embed", {"queries": ["shelf back"]})
            assert status == 200
            reader = feature_store_reader(local.connection_string, body["dim"])
            assert wait_until(lambda: bool(reader.fetch(["shelf back"])[1].all()))
    finally:
        local.stop()


def test_int8_service_does_not_serve_fp32_rows_and_writes_only_if_the_bundle_says_int8_is_storable(
    tiny_onnx_bundle: Path, redis_server: LocalRedis
) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    manifest = BundleManifest.read(resolve_tower_dir(tiny_onnx_bundle, "query"))
    storable = manifest.recommended_variant.get("materialize") == "int8"
    fp32 = BundleEncoder(tiny_onnx_bundle, threads=1)
    reader = feature_store_reader(redis_server.connection_string, fp32.dim)
    reader.write(["pvc fitting"], fp32.encode(["pvc fitting"]), model_version=fp32.model_version)
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="int8", redis=redis_server.connection_string)
    with running(build_app(cfg)) as port:
        status, body = call(port, "POST", "/embed", {"queries": ["copper pipe", "PVC fitting"]})
        if storable:
            assert wait_until(lambda: bool(reader.fetch(["copper pipe"])[1].all()))
        else:
            time.sleep(0.3)
        _, health = call(port, "GET", "/health")
        _, metrics = call(port, "GET", "/metrics")
    assert status == 200 and body["cached"] == [False, False]  # an fp32 row is another model's vector
    assert body["model_version"] == manifest.version_of("int8") != fp32.model_version
    assert health["variant"] == "int8" and health["store"]["write_back"] is storable
    assert health["model_version_parts"]["variant"] == "int8"
    assert metrics["cache"]["stale"] == 1
    assert (metrics["cache"]["writes"] > 0) is storable
    assert bool(reader.fetch(["copper pipe"])[1].all()) is storable


def test_a_bad_record_or_a_wrong_type_key_is_a_miss_and_never_marks_the_store_down(
    tiny_onnx_bundle: Path, redis_server: LocalRedis
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    enc = BundleEncoder(tiny_onnx_bundle, threads=1)
    narrow = feature_store_reader(redis_server.connection_string, 4)  # a store written before a dimension change
    narrow.write(["red chair"], np.ones((1, 4), dtype=np.float32), model_version=enc.model_version)
    wrong_type = narrow.redis_keys(["oak table"])[0]
    client.set(wrong_type, b"not a hash")  # HMGET on it fails with WRONGTYPE: an error about one key
    versioned = make_query_store(redis_server.connection_string, enc.dim)
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=redis_server.connection_string)
    with running(build_app(cfg)) as port:
        s1, first = call(port, "POST", "/embed", {"queries": ["red chair", "led bulb"]})
        s2, second = call(port, "POST", "/embed", {"queries": ["oak table", "brass hook"]})
        assert second["cached"] == [False, False]
        _, health = call(port, "GET", "/health")
        assert wait_until(lambda: bool(versioned.fetch_current(["red chair", "brass hook"], enc.model_version)[1].all()))
        s3, third = call(port, "POST", "/embed", {"queries": ["red chair", "led bulb"]})
        _, metrics = call(port, "GET", "/metrics")
    assert (s1, s2, s3) == (200, 200, 200)
    assert first["cached"] == [False, False] and third["cached"] == [True, True]  # re-encoded, overwritten
    np.testing.assert_allclose(np.asarray(first["embeddings"][0]), enc.encode(["red chair"])[0], atol=1e-5)
    assert health["status"] == "ok" and health["store"]["state"] == "ok"
    cache = metrics["cache"]
    assert cache["bad_records"] == 1 and cache["lookup_errors"] == 1 and cache["store_errors"] == 0
    assert cache["write_errors"] >= 1  # the wrong-type key cannot be written; the rest of its batch was
    assert client.get(wrong_type) == b"not a hash"


def test_shutdown_flushes_write_backs_within_its_deadline_and_counts_what_it_drops(
    tiny_onnx_bundle: Path, redis_server: LocalRedis
) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    enc = BundleEncoder(tiny_onnx_bundle, threads=1)
    reader = feature_store_reader(redis_server.connection_string, enc.dim)
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=redis_server.connection_string,
                      shutdown_timeout_s=0.2)

    async def serve_then_close(queries: list[str], pause: bool) -> tuple[float, object]:
        service = build_service(cfg)
        await service.start()
        await service.embed(queries)  # misses: write-backs queued, not awaited
        if pause:
            client.execute_command("CLIENT", "PAUSE", "1500", "WRITE")  # writes hang; reads go on
        t0 = time.perf_counter()
        await service.aclose()
        return time.perf_counter() - t0, service.metrics

    secs, m = asyncio.run(serve_then_close([f"flushed {i}" for i in range(50)], pause=False))
    assert reader.fetch([f"flushed {i}" for i in range(50)])[1].all()
    assert m.writes == 50 and m.shutdown_dropped == 0  # type: ignore[attr-defined]
    secs, m = asyncio.run(serve_then_close([f"dropped {i}" for i in range(30)], pause=True))
    try:
        assert secs < 1.0, f"shutdown took {secs:.2f}s with a 0.2 s deadline"
        assert m.shutdown_dropped == 30 and m.writes_dropped >= 30  # type: ignore[attr-defined]
    finally:
        client.execute_command("CLIENT", "UNPAUSE")
