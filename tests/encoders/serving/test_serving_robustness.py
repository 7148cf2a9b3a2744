"""One bad request never fails others or the cache; backpressure; latency histograms.

Real uvicorn, real onnxruntime bundle, real redis-server.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import redis
from serving_helpers import SlowEncoder, call, http, running

from encoders.localredis.server import LocalRedis
from encoders.normalize import normalize_query
from encoders.runtime import BundleEncoder
from encoders.serving.batcher import EncoderFailure
from encoders.serving.config import ServeConfig
from encoders.serving.server import build_app, build_service

GOOD = [f"garden hose {i}" for i in range(20)]


def _concurrent_raw(port: int, bodies: list[bytes]) -> list[tuple[int, dict[str, str], bytes]]:
    """All bodies POSTed to /embed at once, one connection (and thread) each."""
    out: list[tuple[int, dict[str, str], bytes] | None] = [None] * len(bodies)
    barrier = threading.Barrier(len(bodies))

    def one(i: int) -> None:
        barrier.wait()
        out[i] = http(port, "POST", "/embed", bodies[i], {"Content-Type": "application/json"})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r is not None for r in out)
    return out  # type: ignore[return-value]


def test_a_lone_surrogate_gets_400_and_neither_fails_batch_mates_nor_the_store(
    tiny_onnx_bundle: Path, redis_server: LocalRedis
) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=redis_server.connection_string,
                      max_wait_ms=20)
    bodies = [json.dumps({"queries": [q]}).encode() for q in GOOD]
    bodies.insert(9, b'{"queries": ["\\ud800 bad"]}')  # JSON's escape: a lone surrogate after decoding
    with running(build_app(cfg)) as port:
        results = _concurrent_raw(port, bodies)
        _, health = call(port, "GET", "/health")
        _, metrics = call(port, "GET", "/metrics")
    status, _, body = results.pop(9)
    assert status == 400 and b"queries[0] has a lone surrogate U+D800 at character 0" in body
    assert [s for s, _, _ in results] == [200] * 20
    assert health["status"] == "ok" and health["store"]["state"] == "ok"
    assert metrics["cache"]["store_errors"] == 0 and metrics["requests"]["5xx"] == 0


def test_a_batch_the_tokenizer_rejects_fails_only_its_culprit_and_the_store_stays_up(
    tiny_onnx_bundle: Path, redis_server: LocalRedis
) -> None:
    """Below validation (the service called directly): the real tokenizer fails the whole batch on
    a lone surrogate and the real key encoder fails on it; only that request fails."""
    redis.Redis.from_url(redis_server.url).flushdb()
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=redis_server.connection_string,
                      max_wait_ms=30)
    service = build_service(cfg)
    enc = BundleEncoder(tiny_onnx_bundle, threads=1)

    async def main() -> list[object]:
        await service.start()
        try:
            calls = [service.embed([q]) for q in GOOD]
            calls.insert(5, service.embed(["\ud800 bad"]))
            return await asyncio.gather(*calls, return_exceptions=True)
        finally:
            await service.aclose()

    results = asyncio.run(main())
    bad = results.pop(5)
    assert isinstance(bad, EncoderFailure) and "TextEncodeInput" in str(bad)
    expected = enc.encode([normalize_query(q) for q in GOOD])
    for i, r in enumerate(results):
        assert not isinstance(r, BaseException), (i, r)
        np.testing.assert_allclose(r.matrix[0], expected[i], atol=1e-5)  # type: ignore[union-attr]
    assert service.cache.state == "ok", service.cache.last_error
    m = service.metrics
    assert m.store_errors == 0 and m.lookup_errors == 1 and m.encoder_errors == 1 and m.batch_splits >= 1
    assert m.writes_dropped == 0 and m.writes == 20  # batch-mates' write-backs were not dropped


def test_over_capacity_answers_503_with_retry_after_and_counts_it(tiny_onnx_bundle: Path) -> None:
    slow = SlowEncoder(BundleEncoder(tiny_onnx_bundle, threads=1), delay_s=0.3)
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, max_queries=4, max_queue=8)
    bodies = [json.dumps({"queries": [f"q{i} a", f"q{i} b", f"q{i} c", f"q{i} d"]}).encode() for i in range(12)]
    with running(build_app(cfg, encoder=slow)) as port:
        results = _concurrent_raw(port, bodies)
        _, metrics = call(port, "GET", "/metrics?format=json")
        prom = http(port, "GET", "/metrics?format=prometheus")[2].decode()
        after = call(port, "POST", "/embed", {"queries": ["after the burst"]})
    statuses = [s for s, _, _ in results]
    assert set(statuses) <= {200, 503} and statuses.count(503) >= 6, statuses  # 8 queries admitted, in flight included
    assert statuses.count(200) >= 2
    for status, headers, body in results:
        if status == 503:
            assert int(headers["retry-after"]) >= 1 and b"overloaded" in body
    assert metrics["rejected"] == statuses.count(503)
    assert f"searchsage_serve_rejected_total {statuses.count(503)}" in prom
    assert after[0] == 200


PROMETHEUS_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
                     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus's scraper sends


def test_metrics_format_follows_the_query_then_the_accept_header(tiny_onnx_bundle: Path) -> None:
    with running(build_app(ServeConfig(bundle=tiny_onnx_bundle, threads=1))) as port:
        scrape = http(port, "GET", "/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
        curl = http(port, "GET", "/metrics", headers={"Accept": "*/*"})
        forced_json = http(port, "GET", "/metrics?format=json", headers={"Accept": PROMETHEUS_ACCEPT})
        bad = http(port, "GET", "/metrics?format=xml")
    assert scrape[0] == 200 and scrape[1]["content-type"].startswith("text/plain")
    assert b"# TYPE searchsage_serve_encode_seconds histogram" in scrape[2]
    assert curl[0] == 200 and json.loads(curl[2])["requests"]["total"] >= 0  # a person with curl gets JSON
    assert forced_json[0] == 200 and "queries" in json.loads(forced_json[2])
    assert bad[0] == 400 and b"format must be 'json' or 'prometheus'" in bad[2]


def test_queue_wait_and_encode_time_are_prometheus_histograms(tiny_onnx_bundle: Path) -> None:
    parser = pytest.importorskip("prometheus_client.parser")
    with running(build_app(ServeConfig(bundle=tiny_onnx_bundle, threads=1))) as port:
        for i in range(5):
            assert call(port, "POST", "/embed", {"queries": [f"oak table {i}"]})[0] == 200
        status, headers, body = http(port, "GET", "/metrics?format=prometheus")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in parser.text_string_to_metric_families(body.decode())}
    for name in ("searchsage_serve_queue_wait_seconds", "searchsage_serve_encode_seconds"):
        fam = families[name]
        assert fam.type == "histogram"
        samples = {(s.name, s.labels.get("le")): s.value for s in fam.samples}
        assert samples[(f"{name}_count", None)] == 5 and samples[(f"{name}_bucket", "+Inf")] == 5
        buckets = [v for (n, le), v in samples.items() if n.endswith("_bucket")]
        assert buckets == sorted(buckets)  # cumulative
        assert samples[(f"{name}_sum", None)] > 0
