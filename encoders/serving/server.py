"""Assemble the service from a :class:`ServeConfig` (bundle, store) and run it under uvicorn."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from encoders.runtime.encoder import Encoder
from encoders.serving.app import create_app
from encoders.serving.batcher import estimate_tokens
from encoders.serving.config import ServeConfig, ServeConfigError
from encoders.serving.protocols import QueryVectorStore
from encoders.serving.service import EmbeddingService
from encoders.serving.validation import RequestLimits


def resolve_variant(config: ServeConfig) -> tuple[str, dict[str, str]]:
    """The variant to serve and the manifest's ``recommended_variant`` map.

    ``auto`` serves what Feast materialisation and the live ODFV use —
    ``$SEARCHSAGE_BUNDLE_VARIANT``, default fp32 (:mod:`encoders.featurestore.udfs`) — so that a
    stored and a served embedding of the same query come from the same graph. Set that variable to
    ``int8`` for the whole deployment to use the faster, batch-invariant int8 everywhere."""
    from encoders.runtime import BundleManifest, resolve_tower_dir

    manifest = BundleManifest.read(resolve_tower_dir(config.bundle, _kind(config)))
    recommended = dict(getattr(manifest, "recommended_variant", None) or {})
    if config.variant != "auto":
        return config.variant, recommended
    from encoders.featurestore.udfs import VARIANT_ENV

    return os.environ.get(VARIANT_ENV, "fp32"), recommended


def _kind(config: ServeConfig) -> str | None:
    # A bundle root serves its query tower; a tower directory (with manifest.json) is served as is,
    # e.g. ``bundle/pin`` of a pin-only export for a zero-shot service.
    return None if (config.bundle / "manifest.json").is_file() else "query"


def load_encoder(config: ServeConfig, variant: str | None = None) -> Encoder:
    """The query tower of ``config.bundle`` through onnxruntime (``BundleEncoder``), wrapped in a
    :class:`~encoders.runtime.pin_feedback.PinFeedbackEncoder` when ``config.pin_feedback`` is set."""
    from encoders.runtime import BundleEncoder
    from encoders.runtime.pin_feedback import PinFeedbackEncoder, load_pin_feedback

    variant = variant or resolve_variant(config)[0]
    # spin=False (unless --ort-spin): idle onnxruntime threads sleep instead of burning the cores
    # the event loop needs between batches.
    encoder = BundleEncoder(
        config.bundle, variant=variant, threads=config.threads,
        batch_size=max(config.max_batch, 1), kind=_kind(config), spin=config.ort_spin,
    )
    if config.pin_feedback is None:
        return encoder
    try:
        return PinFeedbackEncoder(encoder, load_pin_feedback(config.pin_feedback, config.prf_k, config.prf_weight))
    except ValueError as exc:
        raise ServeConfigError(f"pin_feedback {exc}") from None



def open_store(config: ServeConfig, dim: int) -> QueryVectorStore | None:
    """The Redis fast path for the ``query_embedding`` view, or ``None`` without ``--redis``/``--repo``.

    The connection is not required to work now: a Redis that is down at start-up puts the
    service in degraded mode and it reconnects later.
    """
    if config.redis is None and config.repo is None:
        return None
    from encoders.serving.store import make_query_store

    return make_query_store(config.redis, dim=dim, repo=config.repo)


def _token_counter(encoder: Encoder) -> Callable[[str], int]:
    """The batcher's token estimate, capped at the tower's ``max_length`` (longer inputs are truncated)."""
    inner = getattr(encoder, "inner", encoder)  # PinFeedbackEncoder wraps the BundleEncoder
    manifest = getattr(inner, "manifest", None)
    cap = int(getattr(manifest, "max_length", 0) or 0) or None
    return lambda text: estimate_tokens(text, cap)


def build_service(
    config: ServeConfig, encoder: Encoder | None = None, store: QueryVectorStore | None = None
) -> EmbeddingService:
    """An :class:`EmbeddingService` for ``config``; ``encoder``/``store`` default to the configured ones.

    Write-back happens only for a variant that is safe to store (fp32, or the variant the bundle
    recommends for materialisation: a batch-invariant int8) and unless ``config.write_back`` is
    off. Lookups serve only rows whose ``model_version`` matches the served one exactly
    (:mod:`encoders.runtime.model_version`): bundle, variant and pin-feedback settings.
    """
    variant, recommended = resolve_variant(config)
    enc = encoder if encoder is not None else load_encoder(config, variant)
    st = store if store is not None else open_store(config, int(enc.dim))
    write_back = config.write_back and (variant == "fp32" or recommended.get("materialize") == variant)
    return EmbeddingService(
        enc, st, batching=config.batching, max_batch=config.max_batch, max_batch_tokens=config.max_batch_tokens,
        max_wait_ms=config.max_wait_ms, max_queue=config.max_queue, workers=config.workers,
        call_overhead_tokens=config.call_overhead_tokens,
        store_timeout_s=config.store_timeout_ms / 1000.0, retry_initial_s=config.retry_initial_s,
        retry_max_s=config.retry_max_s, write_back=write_back, shutdown_timeout_s=config.shutdown_timeout_s,
        token_count=_token_counter(enc),
        info={"variant": variant, "max_batch": config.max_batch, "max_batch_tokens": config.max_batch_tokens,
              "max_wait_ms": config.max_wait_ms, "max_queue": config.max_queue},
    )


def build_app(config: ServeConfig, encoder: Encoder | None = None, store: QueryVectorStore | None = None) -> Any:
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
        access_log=False, lifespan="on", timeout_graceful_shutdown=max(1, int(config.shutdown_timeout_s)),
    )
