"""Assemble the service from a :class:`ServeConfig` (bundle, store) and run it under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from encoders.serving.app import create_app
from encoders.serving.config import ServeConfig, ServeConfigError
from encoders.serving.protocols import EmbeddingStore, Encoder
from encoders.serving.service import EmbeddingService
from encoders.serving.validation import RequestLimits


def load_encoder(config: ServeConfig) -> Encoder:
    """The query tower of ``config.bundle`` through onnxruntime (``BundleEncoder``)."""
    from encoders.runtime import BundleEncoder

    return BundleEncoder(
        config.bundle, variant=config.variant, threads=config.threads,
        batch_size=max(config.max_batch, 1), kind="query",
    )


def redis_from_repo(repo: Path) -> str:
    """The online store's connection string from ``repo/feature_store.yaml``."""
    import yaml

    path = Path(repo) / "feature_store.yaml"
    if not path.is_file():
        raise ServeConfigError(f"{path} does not exist (expected a Feast repository with feature_store.yaml)")
    data = yaml.safe_load(path.read_text()) or {}
    online = data.get("online_store") or {}
    if not isinstance(online, dict) or "connection_string" not in online:
        raise ServeConfigError(f"{path}: online_store has no connection_string (expected a Redis online store)")
    from encoders.featurestore.connection import resolve_connection_string

    return resolve_connection_string(str(online["connection_string"]))


def open_store(config: ServeConfig, dim: int) -> EmbeddingStore | None:
    """The Redis fast path for the ``query_embedding`` view, or ``None`` without ``--redis``/``--repo``.

    The connection is not required to work now: a Redis that is down at start-up puts the
    service in degraded mode and it reconnects later.
    """
    if config.redis is None and config.repo is None:
        return None
    conn = config.redis if config.redis is not None else redis_from_repo(config.repo)  # type: ignore[arg-type]
    from encoders.serving.store import make_query_store

    return make_query_store(conn, dim=dim, repo=config.repo)


def build_service(
    config: ServeConfig, encoder: Encoder | None = None, store: EmbeddingStore | None = None
) -> EmbeddingService:
    """An :class:`EmbeddingService` for ``config``; ``encoder``/``store`` default to the configured ones."""
    enc = encoder if encoder is not None else load_encoder(config)
    st = store if store is not None else open_store(config, int(enc.dim))
    return EmbeddingService(
        enc, st, batching=config.batching, max_batch=config.max_batch, max_wait_ms=config.max_wait_ms,
        workers=config.workers, store_timeout_s=config.store_timeout_ms / 1000.0,
        retry_initial_s=config.retry_initial_s, retry_max_s=config.retry_max_s,
        info={"variant": config.variant, "max_batch": config.max_batch, "max_wait_ms": config.max_wait_ms},
    )


def build_app(config: ServeConfig, encoder: Encoder | None = None, store: EmbeddingStore | None = None) -> Any:
    """The ASGI app for ``config`` (service started by the app's lifespan)."""
    service = build_service(config, encoder, store)
    limits = RequestLimits(config.max_body_bytes, config.max_queries, config.max_query_chars)
    return create_app(service, limits)


def run(config: ServeConfig) -> None:
    """Serve until interrupted (uvicorn, one process, uvloop/httptools when installed)."""
    import uvicorn

    app = build_app(config)
    uvicorn.run(
        app, host=config.host, port=config.port, log_level=config.log_level,
        access_log=False, lifespan="on", timeout_graceful_shutdown=5,
    )
