"""``searchsage serve``: the live query-embedding HTTP service (see docs/serving.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

from encoders.cli.arguments import add_pin_feedback_options


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve query embeddings over HTTP with dynamic batching and a Redis cache",
        description="Start an HTTP service: POST /embed {\"queries\": [...]}, GET /health, GET /metrics. "
        "Concurrent requests share encoder batches (flushed at --max-batch queries or after "
        "--max-wait-ms); with --redis or --repo, embeddings are looked up in the Feast Redis online "
        "store first and misses are written back.",
    )
    p.add_argument("--bundle", required=True, type=Path, help="bundle directory from `searchsage export`")
    store = p.add_mutually_exclusive_group()
    store.add_argument("--repo", type=Path, default=None, help="Feast repository whose online store is the cache")
    store.add_argument("--redis", default=None, metavar="HOST:PORT", help="Redis online store (host:port[,password=...])")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    p.add_argument("--variant", choices=("auto", "fp32", "int8"), default="auto",
                   help="ONNX variant (default auto: $SEARCHSAGE_BUNDLE_VARIANT, else fp32 — the variant Feast "
                   "materialisation uses, so stored and served vectors agree)")
    p.add_argument("--max-batch", type=int, default=256, help="most queries per encoder call (default 256)")
    p.add_argument("--max-wait-ms", type=float, default=5.0, help="flush a batch after this wait (default 5 ms)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    p.add_argument("--workers", type=int, default=1, help="encoder threads, one batch in flight each (default 1)")
    p.add_argument("--no-batching", action="store_true", help="encode each request on its own (baseline)")
    p.add_argument("--max-queries", type=int, default=256, help="most queries per request (default 256)")
    p.add_argument("--max-body-bytes", type=int, default=1_000_000, help="largest request body (default 1 MB)")
    p.add_argument("--ort-spin", action="store_true",
                   help="let idle onnxruntime threads spin-wait (default: they sleep, leaving CPU to HTTP)")
    p.add_argument("--pin-feedback", type=Path, default=None, metavar="PINS_PARQUET",
                   help="refine each query embedding towards the mean of its top pins in this pins.parquet "
                   "(the same as `searchsage encode --pin-feedback`; default off)")
    add_pin_feedback_options(p, "with --pin-feedback")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"))
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from encoders.cli.main import CLIError
    from encoders.serving.config import ServeConfig, ServeConfigError

    try:
        config = ServeConfig(
            bundle=args.bundle, variant=args.variant, redis=args.redis, repo=args.repo, host=args.host,
            port=args.port, max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, threads=args.threads,
            workers=args.workers, batching=not args.no_batching, max_queries=args.max_queries,
            max_body_bytes=args.max_body_bytes, ort_spin=args.ort_spin, log_level=args.log_level,
            pin_feedback=args.pin_feedback, prf_k=args.prf_k, prf_weight=args.prf_weight,
        )
    except ServeConfigError as exc:
        raise CLIError(str(exc)) from None
    from encoders.runtime import BundleError
    from encoders.serving.server import run

    try:
        run(config)
    except (BundleError, ServeConfigError) as exc:
        raise CLIError(str(exc)) from None
    return 0
