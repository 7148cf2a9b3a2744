"""The Starlette ASGI app: ``POST /embed``, ``GET /health``, ``GET /metrics``.

``POST /embed`` takes ``{"queries": ["..."]}`` and answers
``{"model_version": str, "dim": D, "embeddings": [[D floats], ...], "cached": [bool, ...]}``, or, when
the request says ``Accept: application/octet-stream``, the raw float32 matrix (see
:func:`binary_response`): no JSON number formatting on the server nor parsing on the client.
Client mistakes get a 4xx JSON ``{"error": message}``; a full queue gets 503 with ``Retry-After``;
an encoder failure on the request's own texts gets a 500 with the same shape (never because of
another request); nothing a client sends can stop the worker or disable the cache.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator

import numpy as np
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from encoders.serving.batcher import Overloaded
from encoders.serving.metrics import to_prometheus
from encoders.serving.service import EmbeddingService
from encoders.serving.validation import BadRequest, RequestLimits, check_content_type, parse_embed_body

try:  # orjson writes numpy float32 rows directly (shortest round-trip repr), ~14x faster than json
    import orjson

    def _dumps(payload: object) -> bytes:
        return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)

except ImportError:  # pragma: no cover - orjson is a dependency; keep working without it

    def _dumps(payload: object) -> bytes:
        return json.dumps(_plain(payload), separators=(",", ":"), allow_nan=False).encode()


def _plain(obj: object) -> object:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


def _json(payload: object, status: int = 200) -> Response:
    return Response(_dumps(payload), status_code=status, media_type="application/json")


BINARY_MEDIA_TYPE = "application/octet-stream"
#: Response headers of a binary ``/embed`` answer.
SHAPE_HEADER, DTYPE_HEADER = "X-Embedding-Shape", "X-Embedding-Dtype"
VERSION_HEADER, CACHED_HEADER = "X-Model-Version", "X-Embedding-Cached"


def wants_prometheus(fmt: str | None, accept: str | None) -> bool:
    """Whether ``GET /metrics`` answers in Prometheus text format: ``?format=prometheus``, or no
    ``format`` and an ``Accept`` header naming the text formats a Prometheus scraper asks for
    (``application/openmetrics-text``, ``text/plain``), so a stock scrape config works as is.
    ``?format=json``, ``curl``'s ``*/*`` and no header give JSON."""
    if fmt is not None:
        return fmt == "prometheus"
    types = {part.split(";", 1)[0].strip().lower() for part in (accept or "").split(",")}
    return bool(types & {"application/openmetrics-text", "text/plain"})


def wants_binary(accept: str | None) -> bool:
    """Whether an ``Accept`` header asks for ``application/octet-stream`` (with a non-zero ``q``)."""
    if not accept:
        return False
    for item in accept.split(","):
        media, _, params = item.partition(";")
        if media.strip().lower() != BINARY_MEDIA_TYPE:
            continue
        q = "1"
        for param in params.split(";"):
            key, _, val = param.partition("=")
            if key.strip().lower() == "q":
                q = val.strip()
        try:
            return float(q) > 0
        except ValueError:
            return True
    return False


def binary_response(matrix: np.ndarray, cached: np.ndarray, model_version: str) -> Response:
    """The ``(N, D)`` embeddings as ``N*D`` little-endian float32 bytes, row-major (row ``i`` for query
    ``i``), with ``X-Embedding-Shape: N,D``, ``X-Embedding-Dtype: float32``, ``X-Model-Version`` and
    ``X-Embedding-Cached`` (``N`` comma-separated ``1``/``0``) headers."""
    m = np.ascontiguousarray(matrix, dtype="<f4")
    headers = {
        SHAPE_HEADER: f"{m.shape[0]},{m.shape[1]}", DTYPE_HEADER: "float32", VERSION_HEADER: model_version,
        CACHED_HEADER: ",".join("1" if c else "0" for c in cached.tolist()),
    }
    return Response(m.tobytes(), media_type=BINARY_MEDIA_TYPE, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise BadRequest(400, f"invalid Content-Length header {declared!r}")
        if int(declared) > limit:
            raise BadRequest(413, f"request body is larger than {limit} bytes (Content-Length {declared})")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(service: EmbeddingService, limits: RequestLimits | None = None) -> Starlette:
    """Build the ASGI app around ``service``; the app's lifespan starts and stops it."""
    limits = limits or RequestLimits()
    metrics = service.metrics

    async def embed(request: Request) -> Response:
        t0 = time.perf_counter()
        n = 0
        try:
            check_content_type(request.headers.get("content-type"))
            body = await _read_body(request, limits.max_body_bytes)
            queries = parse_embed_body(body, limits)
            n = len(queries)
            result = await service.embed(queries)
        except BadRequest as exc:
            metrics.record_request(exc.status)
            return _json({"error": exc.message}, exc.status)
        except Overloaded as exc:
            metrics.record_request(503)
            response = _json({"error": str(exc)}, 503)
            response.headers["Retry-After"] = str(exc.retry_after_s)
            return response
        except ClientDisconnect:
            metrics.record_request(499)
            return Response(status_code=400)
        except Exception as exc:  # the worker keeps serving; the client learns what failed
            metrics.record_request(500)
            return _json({"error": service.cache.describe(f"internal error: {type(exc).__name__}: {exc}")}, 500)
        if wants_binary(request.headers.get("accept")):
            response = binary_response(result.matrix, result.cached, result.model_version)
            metrics.record_request(200, time.perf_counter() - t0, n)
            return response
        response = _json(
            {
                "model_version": result.model_version,
                "dim": int(result.matrix.shape[1]),
                "embeddings": np.ascontiguousarray(result.matrix, dtype=np.float32),
                "cached": result.cached.tolist(),
            }
        )
        metrics.record_request(200, time.perf_counter() - t0, n)
        return response

    async def health(request: Request) -> Response:
        return _json(service.health())

    async def metrics_endpoint(request: Request) -> Response:
        fmt = request.query_params.get("format")
        if fmt not in (None, "json", "prometheus"):
            return JSONResponse({"error": f"format must be 'json' or 'prometheus', got {fmt[:40]!r}"}, 400)
        snap = metrics.snapshot()
        snap["store"] = service.cache.health().to_dict()  # address and last_error already redacted
        snap["cache"]["stale"] = service.cache.stale  # type: ignore[index]
        if wants_prometheus(fmt, request.headers.get("accept")):
            return Response(to_prometheus(snap), media_type="text/plain; version=0.0.4")
        return _json(snap)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await service.start()
        try:
            yield
        finally:
            await service.aclose()

    async def not_found(request: Request, exc: Exception) -> Response:
        metrics.record_request(404)
        return JSONResponse({"error": f"no route {request.method} {request.url.path}; try POST /embed"}, 404)

    async def bad_method(request: Request, exc: Exception) -> Response:
        metrics.record_request(405)
        return JSONResponse({"error": f"method {request.method} is not allowed on {request.url.path}"}, 405)

    app = Starlette(
        routes=[
            Route("/embed", embed, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metrics", metrics_endpoint, methods=["GET"]),
        ],
        lifespan=lifespan,
        exception_handlers={404: not_found, 405: bad_method},
    )
    app.state.service = service
    return app
