"""Model versions: the one compatibility rule, pin-feedback rows, two versions sharing one Redis."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import redis
from serving_helpers import call, running, wait_until

from encoders.localredis.server import LocalRedis
from encoders.redis_records.embeddings import EmbeddingStore
from encoders.runtime import BundleEncoder
from encoders.runtime.model_version import ModelVersion, ModelVersionError, is_compatible
from encoders.serving.config import ServeConfig
from encoders.serving.server import build_app
from encoders.serving.store import QUERY_JOIN_KEY, QUERY_VIEW, redis_client


def test_version_strings_parse_into_parts_and_only_an_exact_match_is_compatible() -> None:
    v = ModelVersion.parse("query-98c4071e04ab+int8+pinfb-k5-w0.1-0123456789ab")
    assert (v.bundle, v.variant, v.feedback, v.extra) == ("query-98c4071e04ab", "int8", "pinfb-k5-w0.1-0123456789ab", ())
    assert str(v) == "query-98c4071e04ab+int8+pinfb-k5-w0.1-0123456789ab"
    assert ModelVersion.parse("query-1").variant == "fp32" and ModelVersion.parse("query-1").feedback is None
    assert is_compatible(v, "query-98c4071e04ab+pinfb-k5-w0.1-0123456789ab+int8")  # same parts, any order
    for other in ("query-98c4071e04ab", "query-98c4071e04ab+int8", "query-98c4071e04ab+pinfb-k5-w0.1-0123456789ab",
                  "query-98c4071e04ab+int8+pinfb-k4-w0.1-0123456789ab", "query-000000000000+int8+pinfb-k5-w0.1-0123456789ab",
                  "query-98c4071e04ab+int8+pinfb-k5-w0.1-0123456789ab+extra", None, "", "a++b"):
        assert not is_compatible(v, other), other
    assert not is_compatible("query-1", "query-1+int8") and is_compatible("query-1", "query-1")
    with pytest.raises(ModelVersionError):
        ModelVersion.parse("query-1++int8")


def _pins(tmp_path: Path, dim: int) -> Path:
    from encoders.data.schema import PINS, write_table

    pins = np.random.default_rng(5).normal(size=(50, dim)).astype(np.float32)
    path = tmp_path / "pins.parquet"
    write_table(pa.table({"pin_id": [f"p{i}" for i in range(50)], "text": ["t"] * 50,
                          "embedding": pa.array([r.tolist() for r in pins], pa.list_(pa.float32()))}), path, PINS)
    return path


def _versions(conn: str, dim: int, keys: list[str]) -> list[str | None]:
    store = EmbeddingStore(client=redis_client(conn), project="searchsage", feature_view=QUERY_VIEW,
                           join_key=QUERY_JOIN_KEY, dim=dim)
    return store.fetch_with_versions(keys)[2]


def test_a_pin_feedback_service_does_not_serve_rows_made_without_feedback(
    tiny_onnx_bundle: Path, redis_server: LocalRedis, tmp_path: Path
) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    plain = BundleEncoder(tiny_onnx_bundle, threads=1)
    store = EmbeddingStore(client=redis_client(redis_server.connection_string), project="searchsage",
                           feature_view=QUERY_VIEW, join_key=QUERY_JOIN_KEY, dim=plain.dim)
    store.write(["angle bracket"], plain.encode(["angle bracket"]), model_version=plain.model_version)
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=redis_server.connection_string,
                      pin_feedback=_pins(tmp_path, plain.dim), prf_k=3, prf_weight=0.5)
    with running(build_app(cfg)) as port:
        status, body = call(port, "POST", "/embed", {"queries": ["angle bracket"]})
        assert wait_until(lambda: _versions(redis_server.connection_string, plain.dim, ["angle bracket"])
                          == [body["model_version"]])  # a row from before this service started is replaced
        again = call(port, "POST", "/embed", {"queries": ["angle bracket"]})[1]
        _, metrics = call(port, "GET", "/metrics")
    assert status == 200 and body["cached"] == [False] and "+pinfb-k3-w0.5-" in body["model_version"]
    assert not np.allclose(body["embeddings"][0], plain.encode(["angle bracket"])[0], atol=1e-3)
    assert metrics["cache"]["stale"] == 1 and again["cached"] == [True]
    assert again["embeddings"] == body["embeddings"]


def test_two_versions_on_one_redis_never_overwrite_each_others_live_rows(
    tiny_onnx_bundle: Path, redis_server: LocalRedis, tmp_path: Path
) -> None:
    conn = redis_server.connection_string
    redis.Redis.from_url(redis_server.url).flushdb()
    plain = BundleEncoder(tiny_onnx_bundle, threads=1)
    old = EmbeddingStore(client=redis_client(conn), project="searchsage", feature_view=QUERY_VIEW,
                         join_key=QUERY_JOIN_KEY, dim=plain.dim)
    old.write(["leftover"], np.ones((1, plain.dim), dtype=np.float32), model_version="query-olddeployment")
    time.sleep(0.05)
    cfg_a = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=conn)
    cfg_b = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=conn,
                        pin_feedback=_pins(tmp_path, plain.dim))
    with running(build_app(cfg_a)) as port_a, running(build_app(cfg_b)) as port_b:
        va = call(port_a, "GET", "/health")[1]["model_version"]
        vb = call(port_b, "GET", "/health")[1]["model_version"]
        assert va != vb

        def stored(key: str) -> str | None:
            return _versions(conn, plain.dim, [key])[0]

        # A row of an earlier deployment (written before both started) is replaced by the first writer.
        assert call(port_a, "POST", "/embed", {"queries": ["leftover"]})[1]["cached"] == [False]
        assert wait_until(lambda: stored("leftover") == va)
        # Each service fills the keys it meets first ...
        call(port_a, "POST", "/embed", {"queries": ["only a"]})
        call(port_b, "POST", "/embed", {"queries": ["only b"]})
        assert wait_until(lambda: stored("only a") == va and stored("only b") == vb)
        # ... and never overwrites the other live service's rows: they are misses, encoded fresh.
        for _ in range(3):
            assert call(port_b, "POST", "/embed", {"queries": ["only a", "leftover"]})[1]["cached"] == [False, False]
            assert call(port_a, "POST", "/embed", {"queries": ["only b"]})[1]["cached"] == [False]
        time.sleep(0.3)
        assert (stored("only a"), stored("leftover"), stored("only b")) == (va, va, vb)
        # Each still caches its own rows.
        assert call(port_a, "POST", "/embed", {"queries": ["only a"]})[1]["cached"] == [True]
        assert call(port_b, "POST", "/embed", {"queries": ["only b"]})[1]["cached"] == [True]
        ma, mb = call(port_a, "GET", "/metrics")[1]["cache"], call(port_b, "GET", "/metrics")[1]["cache"]
    assert ma["foreign_kept"] == 3 and mb["foreign_kept"] == 6 and ma["write_conflicts"] == mb["write_conflicts"] == 0
    # A restarted service (a new deployment) takes over rows written before it started.
    with running(build_app(cfg_b)) as port_b2:
        call(port_b2, "POST", "/embed", {"queries": ["only a"]})
        assert wait_until(lambda: _versions(conn, plain.dim, ["only a"])[0] == vb)


def test_a_write_back_loses_to_a_row_written_since_its_lookup(tiny_onnx_bundle: Path, redis_server: LocalRedis) -> None:
    """Compare-and-set: the write-back checks that the row still holds what the lookup saw."""
    from encoders.serving.store import make_query_store

    redis.Redis.from_url(redis_server.url).flushdb()
    store = make_query_store(redis_server.connection_string, dim=4)
    first = store.lookup(["lamp", "rug"], "v-mine", since=time.time())
    assert first.writable.tolist() == [True, True] and first.expect == [None, None]
    store.write(["lamp"], np.full((1, 4), 2.0, dtype=np.float32), "v-other")  # another service, meanwhile
    written = store.write_if(["lamp", "rug"], np.ones((2, 4), dtype=np.float32), "v-mine", first.expect)
    assert written == 1
    m, found, _ = store.fetch_current(["lamp", "rug"], "v-other")
    assert found.tolist() == [True, False] and m[0].tolist() == [2.0] * 4
    assert store.fetch_current(["rug"], "v-mine")[1].tolist() == [True]
