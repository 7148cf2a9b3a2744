"""Configuration of the embedding service (one dataclass, validated on construction).

Every option of ``searchsage serve`` is declared once, here: its default is the field's, its help text
is in the field's metadata (:func:`option`), and the command's flags are generated from the fields
in their order (:func:`encoders.cli_support.add_config_options`); ``--prf-k``/``--prf-weight`` are
:class:`~encoders.runtime.pin_feedback.PinFeedback`'s (added by
:func:`encoders.cli_support.add_pin_feedback_options`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from encoders.runtime.length_groups import DEFAULT_CALL_OVERHEAD_TOKENS
from encoders.runtime.pin_feedback import PinFeedback


class ServeConfigError(ValueError):
    """A serving option has an impossible value; the message names the option."""


def option(default: Any, help: str | None, **metadata: Any) -> Any:
    """A config field whose ``help`` (``%(default)s`` or ``{default}`` allowed) is what ``searchsage serve
    --help`` shows; other ``metadata`` as :func:`encoders.cli_support.add_config_options` reads it
    (``flag``, ``choices``, ``metavar``)."""
    return field(default=default, metadata={"help": help, **metadata})


#: Not a flag of ``searchsage serve``.
_NO_FLAG: dict[str, Any] = {"flag": None}


@dataclass
class ServeConfig:
    """Everything ``searchsage serve`` needs.

    Attributes:
        bundle: bundle directory (``query/`` inside it is used when present) or a ``query/`` dir.
        variant: ``auto`` (``$SEARCHSAGE_BUNDLE_VARIANT``, else fp32: the variant Feast materialisation uses), ``fp32`` or ``int8``.
        redis: ``host:port[,password=...]`` of the online store, or ``None``.
        repo: Feast repository whose ``feature_store.yaml`` names the Redis online store.
        max_batch: most queries per encoder call.
        max_batch_tokens: most estimated tokens per encoder call (summed over its queries).
        max_wait_ms: how long a forming batch (two or more waiting) may fill while a worker is idle (ms).
        max_queue: most queries waiting for the encoder; more are answered 503 (backpressure).
        threads: onnxruntime intra-op threads per session.
        workers: encoder worker threads; one batch in flight per worker.
        call_overhead_tokens: a call's fixed cost in tokens; batches are cut into calls of similar length.
        batching: ``False`` encodes each request on its own (the baseline the batcher beats).
        max_queries: most queries accepted in one request.
        max_query_chars: longest accepted query, in characters, before normalisation.
        max_body_bytes: largest accepted request body, in bytes.
        store_timeout_ms: a store lookup slower than this counts as a miss (ms).
        retry_initial_s / retry_max_s: backoff between reconnection attempts when Redis is down (s).
        shutdown_timeout_s: how long shutdown flushes queued write-backs before dropping (counting) them.
        write_back: write encoded misses back to the store (``False``: read-only cache, e.g. for a
            canary that must not touch another deployment's rows).
        ort_spin: let idle onnxruntime threads spin (faster hand-off, but burns the shared cores).
        pin_feedback: a dataset's ``pins.parquet``: refine every query embedding towards the mean of
            its top ``prf_k`` pins there, with weight ``prf_weight`` (as ``searchsage encode
            --pin-feedback`` does for materialised ones); ``None`` = off.
    """

    bundle: Path = field(metadata={"help": "bundle directory from `searchsage export`"})
    repo: Path | None = field(default=None, metadata={"help": "Feast repository whose online store is the cache"})
    redis: str | None = option(None, "Redis online store (host:port[,password=...] or "
                               "redis://[:password@]host:port[/db])", metavar="HOST:PORT")
    host: str = option("127.0.0.1", "address to bind (default {default}, loopback only)")
    port: int = option(8000, "TCP port (default {default})")
    variant: str = option(
        "auto", "ONNX variant (default {default}: $SEARCHSAGE_BUNDLE_VARIANT, else fp32 — the variant Feast "
        "materialisation uses, so stored and served vectors agree)", choices=("auto", "fp32", "int8"))
    max_batch: int = option(256, "most queries per encoder call (default %(default)s)")
    max_batch_tokens: int = option(
        16384, "most estimated tokens per encoder call, summed over its queries, like TEI's "
        "--max-batch-tokens (default %(default)s)")
    max_wait_ms: float = option(
        0.0, "when several requests already wait for an idle encoder, how long the batch may fill, counted "
        "from its oldest request (default %(default)s); a lone request never waits, and while the encoder "
        "is busy requests accumulate anyway")
    max_queue: int = option(
        2048, "most queries waiting for the encoder; beyond it requests get 503 with Retry-After "
        "(default %(default)s)")
    threads: int = option(2, "onnxruntime intra-op threads (default %(default)s)")
    workers: int = option(1, "encoder threads, one batch in flight each (default %(default)s)")
    call_overhead_tokens: float = option(
        DEFAULT_CALL_OVERHEAD_TOKENS, "fixed cost of one encoder call in tokens of work, used to cut each batch into calls of "
        "similar token length (default %(default)s; 0 = one call per batch)")
    batching: bool = option(True, "encode each request on its own (baseline)", flag="--no-batching")
    max_queries: int = option(256, "most queries per request (default %(default)s)")
    max_query_chars: int = option(1024, "longest query in characters, before normalisation (default %(default)s)")
    max_body_bytes: int = option(1_000_000, "largest request body in bytes (default %(default)s)")
    store_timeout_ms: float = option(250.0, "a store lookup slower than this marks Redis down (default %(default)s ms)")
    retry_initial_s: float = field(default=0.5, metadata=_NO_FLAG)
    retry_max_s: float = field(default=30.0, metadata=_NO_FLAG)
    shutdown_timeout_s: float = option(
        5.0, "on shutdown, flush queued write-backs for at most this long; the rest are dropped "
        "and counted (default %(default)s s)")
    write_back: bool = option(True, "never write to the store (read-only cache; e.g. a canary sharing another "
                              "deployment's store)", flag="--no-write-back")
    ort_spin: bool = option(False, "let idle onnxruntime threads spin-wait (default: they sleep, leaving CPU to HTTP)")
    pin_feedback: Path | None = field(default=None, metadata={
        "help": "refine each query embedding towards the mean of its top pins in this pins.parquet (the same "
        "as `searchsage encode --pin-feedback`; default off)", "metavar": "PINS_PARQUET"})
    prf_k: int = field(default=PinFeedback.k, metadata=_NO_FLAG)
    prf_weight: float = field(default=PinFeedback.weight, metadata=_NO_FLAG)
    log_level: str = option("warning", None, choices=("critical", "error", "warning", "info", "debug"))

    def __post_init__(self) -> None:
        self.bundle = Path(self.bundle)
        if self.repo is not None:
            self.repo = Path(self.repo)
        if self.pin_feedback is not None:
            self.pin_feedback = Path(self.pin_feedback)
        checks = {
            "max_batch": self.max_batch >= 1,
            "max_batch_tokens": self.max_batch_tokens >= 1,
            "max_queue": self.max_queue >= self.max_queries,
            "shutdown_timeout_s": self.shutdown_timeout_s >= 0,
            "max_wait_ms": self.max_wait_ms >= 0,
            "threads": self.threads >= 1,
            "workers": self.workers >= 1,
            "call_overhead_tokens": self.call_overhead_tokens >= 0,
            "max_queries": self.max_queries >= 1,
            "max_query_chars": self.max_query_chars >= 1,
            "max_body_bytes": self.max_body_bytes >= 64,
            "port": 0 <= self.port <= 65535,
            "store_timeout_ms": self.store_timeout_ms > 0,
            "retry_initial_s": 0 < self.retry_initial_s <= self.retry_max_s,
        }
        for name, ok in checks.items():
            if not ok:
                hint = f" (must be >= max_queries={self.max_queries})" if name == "max_queue" else ""
                raise ServeConfigError(f"invalid serving option {name}={getattr(self, name)!r}{hint}")
        if self.variant not in ("auto", "fp32", "int8"):
            raise ServeConfigError(f"invalid serving option variant={self.variant!r} (expected auto, fp32 or int8)")
        try:
            PinFeedback(self.prf_k, self.prf_weight)
        except ValueError as exc:
            raise ServeConfigError(f"invalid serving option prf_k/prf_weight: {exc}") from None
        if self.redis is not None and self.repo is not None:
            raise ServeConfigError("give either redis (host:port) or repo (a Feast repository), not both")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view (paths as strings, the Redis password redacted) for /health and logs."""
        from encoders.redis_records.connection import redact_secrets

        d = asdict(self)
        if d["redis"] is not None:
            d["redis"] = redact_secrets(d["redis"], d["redis"])
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}

