"""Redis stopped while ``searchsage serve`` is under load: every request is still answered (from the
encoder), ``/health`` says degraded, and once Redis is back the cache is used again — no restart.

Real uvicorn, real onnxruntime bundle, real redis-server processes.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from serving_helpers import call, running, wait_until

from encoders.localredis.server import LocalRedis
from encoders.normalize import normalize_query
from encoders.runtime import BundleEncoder
from encoders.serving.config import ServeConfig
from encoders.serving.server import build_app

POOL = [f"{c} {t} {i}" for i, (c, t) in enumerate(
    (c, t) for c in ("red", "oak", "brass", "steel") for t in ("chair", "lamp", "shelf", "hook", "door"))]


class Load:
    """``clients`` threads POSTing /embed in a loop (two queries a request) until stopped; every
    response is kept with the time it came back."""

    def __init__(self, port: int, clients: int = 3) -> None:
        self.port, self.stop = port, threading.Event()
        self.results: list[tuple[float, int, list[str], dict]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]

    def _run(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        while not self.stop.is_set():
            queries = [POOL[int(i)] for i in rng.choice(len(POOL), size=2, replace=False)]
            status, body = call(self.port, "POST", "/embed", {"queries": queries})
            with self.lock:
                self.results.append((time.monotonic(), status, queries, body))
            time.sleep(0.01)

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=30)

    def count(self) -> int:
        with self.lock:
            return len(self.results)


def test_redis_stopped_under_load_requests_keep_succeeding_and_the_cache_comes_back(tiny_onnx_bundle: Path) -> None:
    enc = BundleEncoder(tiny_onnx_bundle, threads=1)
    expected = dict(zip([normalize_query(q) for q in POOL], enc.encode([normalize_query(q) for q in POOL]),
                        strict=True))
    local = LocalRedis().start()
    redis_port = local.port
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=local.connection_string,
                      retry_initial_s=0.2, retry_max_s=0.5)
    try:
        with running(build_app(cfg)) as port, Load(port) as load:
            assert wait_until(lambda: load.count() >= 30, timeout_s=30)
            assert wait_until(lambda: call(port, "GET", "/metrics")[1]["cache"]["hits"] > 0, timeout_s=10), \
                "the cache never served a hit before the fault"
            local.stop()
            assert wait_until(lambda: call(port, "GET", "/health")[1]["status"] == "degraded", timeout_s=10)
            _, health = call(port, "GET", "/health")
            assert health["store"]["state"] == "down" and health["store"]["last_error"]
            time.sleep(0.3)  # requests already past their lookup when Redis stopped have answered
            down_from, n_down = time.monotonic(), load.count()
            assert wait_until(lambda: load.count() >= n_down + 20, timeout_s=30), "requests stalled while Redis was down"
            local = LocalRedis(port=redis_port).start()  # empty: the cache must fill up again
            restarted_at = time.monotonic()
            assert wait_until(lambda: call(port, "GET", "/health")[1]["status"] == "ok", timeout_s=10)
            hits_back = call(port, "GET", "/metrics")[1]["cache"]["hits"]
            assert wait_until(lambda: call(port, "GET", "/metrics")[1]["cache"]["hits"] > hits_back + 10,
                              timeout_s=20), "the cache was not used again after Redis came back"
            _, metrics = call(port, "GET", "/metrics")
    finally:
        local.stop()

    results = load.results
    assert len(results) >= 60
    bad = [(s, b) for _, s, _, b in results if s != 200]
    assert not bad, f"{len(bad)} of {len(results)} requests failed, e.g. {bad[:2]}"
    for _, _, queries, body in results:  # every answer is the model's embedding, cached or not
        got = np.asarray(body["embeddings"], dtype=np.float32)
        np.testing.assert_allclose(got, np.stack([expected[normalize_query(q)] for q in queries]), atol=1e-5)
    down = [b for t, _, _, b in results if down_from < t < restarted_at]
    after = [b for t, _, _, b in results if t > restarted_at]
    assert down and not any(any(b["cached"]) for b in down), "nothing can be a hit while Redis is down"
    assert sum(sum(b["cached"]) for b in after) > 10, "hits after Redis came back"
    cache = metrics["cache"]
    assert cache["store_errors"] >= 1 and cache["bypassed"] > 0 and cache["lookup_errors"] == 0
