"""Configuration of the embedding service (one dataclass, validated on construction)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from encoders.model.pin_feedback import PinFeedback


class ServeConfigError(ValueError):
    """A serving option has an impossible value; the message names the option."""


@dataclass
class ServeConfig:
    """Everything ``searchsage serve`` needs.

    Attributes:
        bundle: bundle directory (``query/`` inside it is used when present) or a ``query/`` dir.
        variant: ``auto`` (``$SEARCHSAGE_BUNDLE_VARIANT``, else fp32: the variant Feast materialisation uses), ``fp32`` or ``int8``.
        redis: ``host:port[,password=...]`` of the online store, or ``None``.
        repo: Feast repository whose ``feature_store.yaml`` names the Redis online store.
        max_batch: most queries per encoder call.
        max_wait_ms: longest a query waits for companions before its batch is flushed (ms).
        threads: onnxruntime intra-op threads per session.
        workers: encoder worker threads; one batch in flight per worker.
        batching: ``False`` encodes each request on its own (the baseline the batcher beats).
        max_queries: most queries accepted in one request.
        max_query_chars: longest accepted query, in characters, before normalisation.
        max_body_bytes: largest accepted request body, in bytes.
        store_timeout_ms: a store lookup slower than this counts as a miss (ms).
        retry_initial_s / retry_max_s: backoff between reconnection attempts when Redis is down (s).
        ort_spin: let idle onnxruntime threads spin (faster hand-off, but burns the shared cores).
        pin_feedback: a dataset's ``pins.parquet``: refine every query embedding towards the mean of
            its top ``prf_k`` pins there, with weight ``prf_weight`` (as ``searchsage encode
            --pin-feedback`` does for materialised ones); ``None`` = off.
    """

    bundle: Path
    variant: str = "auto"
    redis: str | None = None
    repo: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_batch: int = 256
    max_wait_ms: float = 5.0
    threads: int = 2
    workers: int = 1
    batching: bool = True
    max_queries: int = 256
    max_query_chars: int = 1024
    max_body_bytes: int = 1_000_000
    store_timeout_ms: float = 250.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    ort_spin: bool = False
    log_level: str = "warning"
    pin_feedback: Path | None = None
    prf_k: int = PinFeedback.k
    prf_weight: float = PinFeedback.weight

    def __post_init__(self) -> None:
        self.bundle = Path(self.bundle)
        if self.repo is not None:
            self.repo = Path(self.repo)
        if self.pin_feedback is not None:
            self.pin_feedback = Path(self.pin_feedback)
        checks = {
            "max_batch": self.max_batch >= 1,
            "max_wait_ms": self.max_wait_ms >= 0,
            "threads": self.threads >= 1,
            "workers": self.workers >= 1,
            "max_queries": self.max_queries >= 1,
            "max_query_chars": self.max_query_chars >= 1,
            "max_body_bytes": self.max_body_bytes >= 64,
            "port": 0 <= self.port <= 65535,
            "store_timeout_ms": self.store_timeout_ms > 0,
            "retry_initial_s": 0 < self.retry_initial_s <= self.retry_max_s,
        }
        for name, ok in checks.items():
            if not ok:
                raise ServeConfigError(f"invalid serving option {name}={getattr(self, name)!r}")
        if self.variant not in ("auto", "fp32", "int8"):
            raise ServeConfigError(f"invalid serving option variant={self.variant!r} (expected auto, fp32 or int8)")
        try:
            PinFeedback(self.prf_k, self.prf_weight)
        except ValueError as exc:
            raise ServeConfigError(f"invalid serving option prf_k/prf_weight: {exc}") from None
        if self.redis is not None and self.repo is not None:
            raise ServeConfigError("give either redis (host:port) or repo (a Feast repository), not both")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view (paths as strings) for /health and logs."""
        d = asdict(self)
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in d.items()}
