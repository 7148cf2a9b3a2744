"""``searchsage serve``: the live query-embedding HTTP service (see docs/serving.md)."""

from __future__ import annotations

import argparse

from encoders.cli_support import add_config_options, add_pin_feedback_options


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve``: every flag is a :class:`~encoders.serving.config.ServeConfig` field's (default, help)."""
    from encoders.serving.config import ServeConfig

    p = subparsers.add_parser(
        "serve",
        help="serve query embeddings over HTTP with dynamic batching and a Redis cache",
        description="Start an HTTP service: POST /embed {\"queries\": [...]}, GET /health, GET /metrics. "
        "Concurrent requests share encoder batches: an idle encoder runs what is queued at once, a busy "
        "one lets requests accumulate up to --max-batch queries / --max-batch-tokens; beyond --max-queue "
        "waiting queries requests get 503. With --redis or --repo, embeddings are looked up in the Feast "
        "Redis online store first and misses are written back.",
    )
    add_config_options(p, ServeConfig, only=("bundle",))
    add_config_options(p.add_mutually_exclusive_group(), ServeConfig, only=("repo", "redis"))
    add_config_options(p, ServeConfig, skip=("bundle", "repo", "redis", "log_level"))
    add_pin_feedback_options(p, "with --pin-feedback")  # --prf-k/--prf-weight: PinFeedback's defaults
    add_config_options(p, ServeConfig, only=("log_level",))
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from encoders.cli_support import CLIError, config_values
    from encoders.redis_records.connection import RedisUnavailable, redact_secrets
    from encoders.serving.config import ServeConfig, ServeConfigError

    try:  # not config_from_args: the message is redacted as it is, then shown
        config = ServeConfig(**config_values(ServeConfig, args))
    except ServeConfigError as exc:
        raise CLIError(redact_secrets(str(exc), args.redis)) from None
    from encoders.runtime import BundleError
    from encoders.serving.server import run

    try:
        run(config)
    except (BundleError, ServeConfigError, RedisUnavailable) as exc:
        raise CLIError(redact_secrets(str(exc), args.redis)) from None
    return 0
