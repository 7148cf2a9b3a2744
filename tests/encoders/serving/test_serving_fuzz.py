"""Fuzz ``POST /embed`` with 200+ malformed requests: each gets a 4xx with a message; the service
stays healthy (store included) and answers a normal request afterwards. Real uvicorn, real bundle,
real redis-server."""

from __future__ import annotations

import json
import random
from pathlib import Path

import redis
from serving_helpers import call, http, running

from encoders.localredis.server import LocalRedis
from encoders.serving.config import ServeConfig
from encoders.serving.server import build_app

JSON = {"Content-Type": "application/json"}
LIMITS = {"max_queries": 8, "max_query_chars": 64, "max_body_bytes": 8000}


def malformed_requests(seed: int = 7) -> list[tuple[str, bytes, dict[str, str]]]:
    """``(category, body, headers)`` for every kind of bad input, seeded."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes, dict[str, str]]] = []
    good = json.dumps({"queries": ["angle bracket", "led bulb"]}).encode()

    def add(kind: str, body: bytes, headers: dict[str, str] | None = None) -> None:
        out.append((kind, body, JSON if headers is None else headers))

    for cut in range(1, len(good) - 1):  # bad JSON: every truncation of a good body
        add("truncated json", good[:cut])
    for _ in range(25):  # bad JSON: random printable garbage
        add("garbage", bytes(rng.choice(b"{}[]\":,abc0123 \\") for _ in range(rng.randint(1, 40))))
    for value in (1, 1.5, None, True, "text", {"a": 1}, [1, 2], [["nested"]], [{"q": "x"}], ["ok", 7], ["ok", None],
                  ["ok", False], ["ok", ["x"]], ["ok", {"x": 1}], [1e308]):
        add("wrong type", json.dumps({"queries": value}).encode())
    for payload in ([], "queries", 42, None, {"query": ["x"]}, {"Queries": ["x"]}, {}):
        add("wrong shape", json.dumps(payload).encode())
    for body in (b"", b" ", b"\n\t ", json.dumps({"queries": []}).encode(), json.dumps({"queries": ["   "]}).encode(),
                 json.dumps({"queries": ["\u3000\u2003"]}).encode()):
        add("empty", body)
    for n in (9, 50, 400):
        add("huge array", json.dumps({"queries": [f"q{i}" for i in range(n)]}).encode())
    for n in (65, 500, 3000, 9000):
        add("huge string", json.dumps({"queries": ["x" * n]}).encode())
    add("huge body", b'{"queries": ["' + b"a" * 20000 + b'"]}')
    add("deep nesting", b"[" * 3000 + b"]" * 3000)
    add("deep nesting", b'{"queries": ' + b"[" * 3000 + b"]" * 3000 + b"}")
    add("huge int", b'{"queries": [' + b"9" * 5000 + b"]}")
    bad_utf8 = [b"\xff", b"\xfe", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xe2\x82"]
    for i in range(30):  # invalid UTF-8 inside a query, in a key, or around the JSON
        junk = bad_utf8[i % len(bad_utf8)]
        where = i % 3
        if where == 0:
            add("invalid utf-8", b'{"queries": ["angle ' + junk + b' bracket"]}')
        elif where == 1:
            add("invalid utf-8", b'{"que' + junk + b'ries": ["x"]}')
        else:
            add("invalid utf-8", junk + good)
    surrogates = ["\\ud800", "\\udbff", "\\udc00", "\\udfff", "\\ud83d", "x\\ude00y"]
    for i in range(24):  # lone surrogates as JSON escapes, alone or among good queries
        s = surrogates[i % len(surrogates)]
        queries = ['"fine"'] * (i % 4) + [f'"lead {s} tail"']
        add("lone surrogate", ('{"queries": [' + ", ".join(queries) + "]}").encode())
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                  "application/xml", "application/json; charset=latin-1", "image/png", "text/json", "*/*",
                  "application/jsonx", "application/json; charset=utf-16"):
        add("wrong content type", good, {"Content-Type": ctype})
    for _ in range(40):  # random mutations of a good body (byte flips)
        b = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.choice(b'{}[]":,\\\x00\xff')
        try:
            payload = json.loads(bytes(b))
            ok = isinstance(payload, dict) and isinstance(payload.get("queries"), list) and payload["queries"] and all(
                isinstance(q, str) and q.strip() for q in payload["queries"])
        except (ValueError, RecursionError):
            ok = False
        if not ok:
            add("mutated", bytes(b))
    return out


def test_malformed_requests_get_4xx_and_the_service_stays_healthy(
    tiny_onnx_bundle: Path, redis_server: LocalRedis
) -> None:
    redis.Redis.from_url(redis_server.url).flushdb()
    cases = malformed_requests()
    assert len(cases) >= 200, len(cases)
    kinds = {k for k, _, _ in cases}
    assert {"truncated json", "wrong type", "empty", "huge array", "huge string", "invalid utf-8", "lone surrogate",
            "wrong content type", "deep nesting", "huge int"} <= kinds
    cfg = ServeConfig(bundle=tiny_onnx_bundle, threads=1, variant="fp32", redis=redis_server.connection_string,
                      max_queue=64, **LIMITS)
    failures = []
    with running(build_app(cfg)) as port:
        for kind, body, headers in cases:
            status, _, data = http(port, "POST", "/embed", body, headers)
            try:
                message = json.loads(data)["error"]
            except (ValueError, KeyError, TypeError):
                message = None
            if not (400 <= status < 500 and isinstance(message, str) and message):
                failures.append((kind, body[:60], status, data[:120]))
        status, body = call(port, "POST", "/embed", {"queries": ["angle bracket", "LED bulb"]})
        _, health = call(port, "GET", "/health")
        _, metrics = call(port, "GET", "/metrics")
    assert not failures, failures[:10]
    assert status == 200 and len(body["embeddings"]) == 2
    assert health["status"] == "ok" and health["store"]["state"] == "ok"
    assert metrics["requests"]["4xx"] == len(cases) and metrics["requests"]["5xx"] == 0
    assert metrics["cache"]["store_errors"] == 0 and metrics["encoder_errors"] == 0
