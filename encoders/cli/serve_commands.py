"""``searchsage serve``: the live query-embedding HTTP service (see docs/serving.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from encoders.cli_support import add_pin_feedback_options


def _option(p: argparse.ArgumentParser, flag: str, kind: type) -> None:
    """Add ``flag`` with the default and help declared once on :class:`ServeConfig`."""
    from encoders.serving.config import option_help

    default, text = option_help(flag.lstrip("-").replace("-", "_"))
    p.add_argument(flag, type=kind, default=default, help=text)


def register(subparsers: argparse._SubParsersAction) -> None:
    from encoders.serving.config import ServeConfig  # every default below is its own

    p = subparsers.add_parser(
        "serve",
        help="serve query embeddings over HTTP with dynamic batching and a Redis cache",
        description="Start an HTTP service: POST /embed {\"queries\": [...]}, GET /health, GET /metrics. "
        "Concurrent requests share encoder batches: an idle encoder runs what is queued at once, a busy "
        "one lets requests accumulate up to --max-batch queries / --max-batch-tokens; beyond --max-queue "
        "waiting queries requests get 503. With --redis or --repo, embeddings are looked up in the Feast "
        "Redis online store first and misses are written back.",
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle directory from `searchsage export`")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--repo", type=Path, default=None, help="Feast repository whose online store is the cache")
    store.add_argument("--redis", default=None, metavar="HOST:PORT",
                       help="Redis online store (host:port[,password=...] or redis://[:password@]host:port[/db])")
    p.add_argument("--host", default=ServeConfig.host,
                   help=f"address to bind (default {ServeConfig.host}, loopback only)")
    p.add_argument("--port", type=int, default=ServeConfig.port, help=f"TCP port (default {ServeConfig.port})")
    p.add_argument("--variant", choices=("auto", "fp32", "int8"), default=ServeConfig.variant,
                   help=f"ONNX variant (default {ServeConfig.variant}: $SEARCHSAGE_BUNDLE_VARIANT, else fp32 — the variant Feast "
                   "materialisation uses, so stored and served vectors agree)")
    _option(p, "--max-batch", int)
    _option(p, "--max-batch-tokens", int)
    _option(p, "--max-wait-ms", float)
    _option(p, "--max-queue", int)
    _option(p, "--threads", int)
    _option(p, "--workers", int)
    p.add_argument("--no-batching", action="store_true", help="encode each request on its own (baseline)")
    _option(p, "--max-queries", int)
    _option(p, "--max-query-chars", int)
    _option(p, "--max-body-bytes", int)
    _option(p, "--store-timeout-ms", float)
    _option(p, "--shutdown-timeout-s", float)
    p.add_argument("--no-write-back", action="store_true",
                   help="never write to the store (read-only cache; e.g. a canary sharing another deployment's store)")
    p.add_argument("--ort-spin", action="store_true",
                   help="let idle onnxruntime threads spin-wait (default: they sleep, leaving CPU to HTTP)")
    p.add_argument("--pin-feedback", type=Path, default=None, metavar="PINS_PARQUET",
                   help="refine each query embedding towards the mean of its top pins in this pins.parquet "
                   "(the same as `searchsage encode --pin-feedback`; default off)")
    add_pin_feedback_options(p, "with --pin-feedback")
    p.add_argument("--log-level", default=ServeConfig.log_level, choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from encoders.cli_support import CLIError
    from encoders.featurestore.connection import redact_secrets
    from encoders.featurestore.redis_server import RedisUnavailable
    from encoders.serving.config import ServeConfig, ServeConfigError

    try:
        config = ServeConfig(
            bundle=args.bundle, variant=args.variant, redis=args.redis, repo=args.repo, host=args.host,
            port=args.port, max_batch=args.max_batch, max_batch_tokens=args.max_batch_tokens,
            max_wait_ms=args.max_wait_ms, max_queue=args.max_queue, threads=args.threads,
            workers=args.workers, batching=not args.no_batching, max_queries=args.max_queries,
            max_query_chars=args.max_query_chars, max_body_bytes=args.max_body_bytes,
            store_timeout_ms=args.store_timeout_ms, shutdown_timeout_s=args.shutdown_timeout_s,
            write_back=not args.no_write_back, ort_spin=args.ort_spin, log_level=args.log_level,
            pin_feedback=args.pin_feedback, prf_k=args.prf_k, prf_weight=args.prf_weight,
        )
    except ServeConfigError as exc:
        raise CLIError(redact_secrets(str(exc), args.redis)) from None
    from encoders.runtime import BundleError
    from encoders.serving.server import run

    try:
        run(config)
    except (BundleError, ServeConfigError, RedisUnavailable) as exc:
        raise CLIError(redact_secrets(str(exc), args.redis)) from None
    return 0
