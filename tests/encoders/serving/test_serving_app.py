"""The HTTP service end to end: real uvicorn, real onnxruntime bundle, real redis-server."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from serving_helpers import call, concurrent_embeds, http, raw, raw_get, running

from encoders.normalize import normalize_query
from encoders.runtime import BundleEncoder
from encoders.serving.config import ServeConfig
from encoders.serving.metrics import to_prometheus
from encoders.serving.server import build_app

QUERIES = ["Angle  BRACKET", "red chair", "LED light bulb", "garden hose", "oak   table  "]


def test_embed_returns_the_runtime_vectors_and_model_version(tiny_onnx_bundle: Path) -> None:
    variant = os.environ.get("SEARCHSAGE_BUNDLE_VARIANT", "fp32")  # what --variant auto serves (= Feast's)
    enc = BundleEncoder(tiny_onnx_bundle, variant=variant, threads=1)
    expected = enc.encode([normalize_query(q) for q in QUERIES])
    with running(build_app(ServeConfig(bundle=tiny_onnx_bundle, threads=1))) as port:
        status, body = call(port, "POST", "/embed", {"queries": QUERIES})
        health_status, health = call(port, "GET", "/health")
    assert status == 200, body
    got = np.asarray(body["embeddings"], dtype=np.float32)
    assert got.shape == (len(QUERIES), enc.dim) and body["dim"] == enc.dim
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    assert body["model_version"] == enc.model_version
    assert body["cached"] == [False] * len(QUERIES)
    assert health_status == 200 and health["status"] == "ok" and health["store"]["state"] == "disabled"
    assert health["variant"] == variant


def test_concurrent_requests_are_grouped_into_batches(tiny_onnx_bundle: Path) -> None:
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, max_wait_ms=30, max_batch=64)
    queries = [f"query number {i}" for i in range(40)]
    with running(build_app(cfg)) as port:
        results = concurrent_embeds(port, queries)
        _, metrics = call(port, "GET", "/metrics")
    assert all(s == 200 for s, _ in results)
    batches = metrics["batches"]
    assert batches["queries"] == 40
    assert batches["count"] < 40 and batches["max_size"] > 1, batches
    hist = batches["histogram"]
    assert sum(hist.values()) == batches["count"]
    assert sum(v for k, v in hist.items() if k != "<=1") >= 1, hist
    assert metrics["requests"]["2xx"] == 40 and metrics["latency"]["request"]["count"] == 40
    prom = to_prometheus(metrics)
    assert f'searchsage_serve_batch_size_bucket{{le="+Inf"}} {batches["count"]}' in prom
    assert 'searchsage_serve_requests_total{status="2xx"} 40' in prom


def test_unbatched_service_makes_one_encoder_call_per_request(tiny_onnx_bundle: Path) -> None:
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, batching=False)
    with running(build_app(cfg)) as port:
        results = concurrent_embeds(port, [f"q {i}" for i in range(12)])
        _, metrics = call(port, "GET", "/metrics")
        _, health = call(port, "GET", "/health")
    assert all(s == 200 for s, _ in results)
    assert metrics["batches"]["count"] == 12 and metrics["batches"]["max_size"] == 1
    assert health["batching"] is False


def test_bad_inputs_get_4xx_with_a_message_and_the_worker_keeps_serving(tiny_onnx_bundle: Path) -> None:
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, max_queries=4, max_body_bytes=6000, max_query_chars=100,
                      max_queue=4)
    bad_json = [
        ({"queries": []}, 422, "empty"),
        ({"queries": ["ok", 3]}, 422, "queries[1] must be a string"),
        ({"queries": ["ok", None]}, 422, "queries[1]"),
        ({"queries": "angle bracket"}, 422, "must be a list"),
        ({"query": ["x"]}, 422, 'missing field "queries"'),
        ({"queries": ["a", "b", "c", "d", "e"]}, 422, "too many queries"),
        ({"queries": ["   "]}, 422, "empty after normalisation"),
        ({"queries": ["x" * 101]}, 422, "limit is 100"),
        (["not", "an", "object"], 400, "JSON object"),
    ]
    with running(build_app(cfg)) as port:
        for payload, status, needle in bad_json:
            got_status, body = call(port, "POST", "/embed", payload)
            assert got_status == status, (payload, body)
            assert needle in body["error"], (payload, body)
        for body_bytes, status, needle in [
            (b"{nope", 400, "not valid UTF-8 JSON"),
            (b"\xff\xfe{}", 400, "not valid UTF-8: byte 0xff at offset 0"),
            (b'{"queries": ["ok", "\\ud800 bad"]}', 400, "queries[1] has a lone surrogate U+D800 at character 0"),
            (b'{"queries": [' + b"1" * 5000 + b"]}", 400, "not valid UTF-8 JSON"),
            (b"[" * 1900 + b"]" * 1900, 400, "JSON"),
            (b"", 400, "empty request body"),
            (b'{"queries": ["' + b"a" * 7000 + b'"]}', 413, "larger than 6000 bytes"),
        ]:
            got_status, data = raw(port, body_bytes)
            assert got_status == status and needle.encode() in data, (body_bytes[:20], data)
        assert call(port, "GET", "/embed")[0] == 405
        assert call(port, "GET", "/nowhere")[0] == 404
        status, body = call(port, "POST", "/embed", {"queries": ["angle bracket"]})
        _, metrics = call(port, "GET", "/metrics")
        prom_status, prom = raw_get(port, "/metrics?format=prometheus")
    assert prom_status == 200 and b'searchsage_serve_requests_total{status="4xx"}' in prom
    assert status == 200 and len(body["embeddings"]) == 1
    assert metrics["requests"]["4xx"] == len(bad_json) + 7 + 2 and metrics["requests"]["5xx"] == 0


def test_serve_cli_help_and_bad_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0 and "--max-wait-ms" in out
    assert "--max-queue" in out and "(default 2048)" in out and "--max-batch-tokens" in out
    assert main(["serve", "--bundle", str(tmp_path / "missing"), "--port", "0"]) == 2
    assert "missing" in capsys.readouterr().err
    assert main(["serve", "--bundle", str(tmp_path), "--max-batch", "0"]) == 2
    assert "max_batch" in capsys.readouterr().err



def test_pin_feedback_refines_live_embeddings_like_the_batch_encoder(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    import pyarrow as pa

    from encoders.data.schema import PINS, write_table
    from encoders.runtime.pin_feedback import PinFeedback, PinFeedbackIndex
    from encoders.serving.config import ServeConfigError

    variant = os.environ.get("SEARCHSAGE_BUNDLE_VARIANT", "fp32")
    enc = BundleEncoder(tiny_onnx_bundle, variant=variant, threads=1)
    pins = np.random.default_rng(5).normal(size=(200, enc.dim)).astype(np.float32)
    path = tmp_path / "pins.parquet"
    write_table(pa.table({"pin_id": [f"p{i}" for i in range(200)], "text": ["t"] * 200,
                          "embedding": pa.array([r.tolist() for r in pins], pa.list_(pa.float32()))}), path, PINS)
    index = PinFeedbackIndex(PinFeedback(k=4, weight=0.3), pins)
    expected = index.apply(enc.encode([normalize_query(q) for q in QUERIES]))
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, pin_feedback=path, prf_k=4, prf_weight=0.3)
    with running(build_app(cfg)) as port:
        status, body = call(port, "POST", "/embed", {"queries": QUERIES})
    assert status == 200, body
    np.testing.assert_allclose(np.asarray(body["embeddings"], dtype=np.float32), expected, rtol=0, atol=1e-5)
    assert body["model_version"] == f"{enc.model_version}+{index.version_tag}"
    with pytest.raises(ServeConfigError, match="prf_k/prf_weight"):
        ServeConfig(bundle=tiny_onnx_bundle, prf_k=0)
    with pytest.raises(ServeConfigError, match=r"pin_feedback .*missing\.parquet: file not found"):
        build_app(ServeConfig(bundle=tiny_onnx_bundle, threads=1, pin_feedback=tmp_path / "missing.parquet"))


def test_binary_responses_carry_the_same_float32_rows_as_json(tiny_onnx_bundle: Path, redis_server) -> None:
    """``Accept: application/octet-stream``: row-major float32 bytes, shape/version/cached in headers."""
    import asyncio

    import redis

    from encoders.redis_records.embeddings import EmbeddingStore
    from encoders.serving.client import EmbedClient, EmbedError
    from encoders.serving.store import QUERY_JOIN_KEY, QUERY_VIEW, redis_client

    redis.Redis.from_url(redis_server.url).flushdb()
    enc = BundleEncoder(tiny_onnx_bundle, variant="fp32", threads=1)
    EmbeddingStore(client=redis_client(redis_server.connection_string), project="searchsage", feature_view=QUERY_VIEW,
                   join_key=QUERY_JOIN_KEY, dim=enc.dim).write(["angle bracket"], enc.encode(["angle bracket"]),
                                                               model_version=enc.model_version)
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=redis_server.connection_string,
                      write_back=False)  # "red chair" stays a miss for every request below
    queries = ["Angle  BRACKET", "red chair", "angle bracket"]  # the third normalises to the first
    with running(build_app(cfg)) as port:
        status, body = call(port, "POST", "/embed", {"queries": queries[:1]})
        assert status == 200 and body["cached"] == [True]
        payload = b'{"queries": ["Angle  BRACKET", "red chair", "angle bracket"]}'
        st, head, data = http(port, "POST", "/embed", payload,
                              {"Content-Type": "application/json", "Accept": "application/octet-stream"})
        _, json_body = call(port, "POST", "/embed", {"queries": queries})
        # q=0 refuses octet-stream: JSON; an error stays JSON whatever the client accepts
        st_q0, head_q0, _ = http(port, "POST", "/embed", payload, {"Accept": "application/octet-stream;q=0"})
        st_bad, head_bad, bad = http(port, "POST", "/embed", b'{"queries": []}', {"Accept": "application/octet-stream"})

        async def through_client() -> tuple[object, object, object]:
            async with EmbedClient("127.0.0.1", port) as c:
                binary, as_json = await c.embed(queries), await c.embed(queries, binary=False)
                try:
                    await c.embed([])
                except EmbedError as exc:
                    return binary, as_json, exc
                raise AssertionError("an empty request must fail")

        binary, as_json, err = asyncio.run(through_client())
    assert st == 200 and head["content-type"] == "application/octet-stream"
    assert head["x-embedding-shape"] == f"3,{body['dim']}" and head["x-embedding-dtype"] == "float32"
    assert head["x-model-version"] == body["model_version"] and head["x-embedding-cached"] == "1,0,1"
    assert len(data) == 3 * body["dim"] * 4
    rows = np.frombuffer(data, dtype="<f4").reshape(3, body["dim"])
    assert rows.tobytes() == np.asarray(json_body["embeddings"], dtype=np.float32).tobytes()  # bit-identical
    assert rows[0].tobytes() == rows[2].tobytes() and rows[0].tobytes() != rows[1].tobytes()
    assert st_q0 == 200 and head_q0["content-type"] == "application/json"
    assert st_bad == 422 and head_bad["content-type"] == "application/json" and b"empty" in bad
    assert binary.matrix.tobytes() == rows.tobytes() and binary.cached.tolist() == [True, False, True]
    assert binary.model_version == body["model_version"] and binary.matrix.dtype == np.float32
    assert as_json.matrix.tobytes() == rows.tobytes() and as_json.cached.tolist() == [True, False, True]
    assert err.status == 422 and "empty" in err.message
