"""Service counters: requests, batch-size histogram, latency percentiles and histograms, cache.

All updates happen on the event loop thread, so no locking is needed. Latencies are kept twice:
in fixed-size ring buffers (the most recent ``window`` observations, percentiles in milliseconds,
for the JSON view) and in cumulative :class:`Histogram` buckets (seconds, for Prometheus, where
quantiles are computed across scrapes and instances). The Prometheus text is written here (no
client library needed); label values pass through the one redaction function.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from encoders.redis_records.connection import redact_secrets

#: Upper bounds (inclusive) of the batch-size histogram buckets; the last bucket is open.
BATCH_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
PERCENTILES: tuple[float, ...] = (50.0, 90.0, 99.0)
#: Upper bounds (seconds) of the queue-wait and encode-time histograms; +Inf is implied.
SECONDS_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)


@dataclass
class Histogram:
    """A Prometheus histogram: cumulative counts per upper bound, ``sum`` and ``count``."""

    bounds: tuple[float, ...] = SECONDS_BUCKETS
    counts: list[int] = field(init=False)
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, b in enumerate(self.bounds):
            if value <= b:
                self.counts[i] += 1  # stored per bucket; made cumulative when exported
                break

    def to_dict(self) -> dict[str, object]:
        """``{"buckets": {le: cumulative count, ..., "+Inf": count}, "sum", "count"}``."""
        out: dict[str, int] = {}
        running = 0
        for b, c in zip(self.bounds, self.counts, strict=True):
            running += c
            out[f"{b:g}"] = running
        out["+Inf"] = self.count
        return {"buckets": out, "sum": round(self.sum, 6), "count": self.count}


@dataclass
class LatencyWindow:
    """The last ``size`` durations (seconds) with percentile summaries in milliseconds."""

    size: int = 20_000
    _buf: np.ndarray = field(init=False, repr=False)
    _n: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self._buf = np.zeros(self.size, dtype=np.float64)

    def add(self, seconds: float) -> None:
        self._buf[self._n % self.size] = seconds
        self._n += 1

    @property
    def count(self) -> int:
        return self._n

    def summary(self) -> dict[str, float | int]:
        """``{"count", "p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"}`` over the window."""
        k = min(self._n, self.size)
        out: dict[str, float | int] = {"count": self._n}
        if k == 0:
            return out | {f"p{int(p)}_ms": 0.0 for p in PERCENTILES} | {"max_ms": 0.0, "mean_ms": 0.0}
        data = self._buf[:k] * 1000.0
        for p, v in zip(PERCENTILES, np.percentile(data, PERCENTILES), strict=True):
            out[f"p{int(p)}_ms"] = round(float(v), 3)
        out["max_ms"] = round(float(data.max()), 3)
        out["mean_ms"] = round(float(data.mean()), 3)
        return out


def bucket_label(size: int) -> str:
    """Histogram label of a batch of ``size`` queries: ``"<=8"`` or ``">256"``."""
    for b in BATCH_BUCKETS:
        if size <= b:
            return f"<={b}"
    return f">{BATCH_BUCKETS[-1]}"


@dataclass
class ServiceMetrics:
    """Everything ``GET /metrics`` reports."""

    started_at: float = field(default_factory=time.time)
    requests: Counter[str] = field(default_factory=Counter)
    queries: int = 0
    batches: int = 0
    batched_queries: int = 0
    batch_max: int = 0
    batch_hist: Counter[str] = field(default_factory=Counter)
    request_latency: LatencyWindow = field(default_factory=LatencyWindow)
    encode_latency: LatencyWindow = field(default_factory=LatencyWindow)
    queue_wait: LatencyWindow = field(default_factory=LatencyWindow)
    queue_wait_hist: Histogram = field(default_factory=Histogram)
    encode_hist: Histogram = field(default_factory=Histogram)
    rejected: int = 0  # requests answered 503 because the queue was full
    batch_splits: int = 0  # failed encoder batches split in halves and retried
    cache_hits: int = 0
    cache_misses: int = 0
    cache_bypassed: int = 0
    writes: int = 0
    write_errors: int = 0
    writes_dropped: int = 0
    store_errors: int = 0  # connection-level failures (these mark the store down)
    lookup_errors: int = 0  # per-request store errors (answered from the encoder; store stays up)
    bad_records: int = 0  # stored rows that did not decode (wrong width, garbage): re-encoded, overwritten
    foreign_kept: int = 0  # rows of another live version, not overwritten (see docs/serving.md)
    write_conflicts: int = 0  # write-backs skipped because the row changed since the lookup
    shutdown_dropped: int = 0  # queued write-backs not confirmed written when shutdown's deadline passed
    encoder_errors: int = 0

    def record_request(self, status: int, seconds: float | None = None, n_queries: int = 0) -> None:
        """Count one HTTP request by status class (``2xx``/``4xx``/``5xx``) and its latency."""
        self.requests["total"] += 1
        self.requests[f"{status // 100}xx"] += 1
        self.queries += n_queries
        if seconds is not None and status < 400:
            self.request_latency.add(seconds)

    def record_batch(self, size: int, encode_seconds: float, waits: list[float]) -> None:
        """One encoder call of ``size`` queries; ``waits`` are queue waits (s) of its requests."""
        self.batches += 1
        self.batched_queries += size
        self.batch_max = max(self.batch_max, size)
        self.batch_hist[bucket_label(size)] += 1
        self.encode_latency.add(encode_seconds)
        self.encode_hist.observe(encode_seconds)
        for w in waits:
            self.queue_wait.add(w)
            self.queue_wait_hist.observe(w)

    def record_cache(self, hits: int, misses: int, bypassed: int = 0) -> None:
        self.cache_hits += hits
        self.cache_misses += misses
        self.cache_bypassed += bypassed

    def snapshot(self) -> dict[str, object]:
        """A JSON-ready dict (see ``docs/serving.md`` for the meaning of every field)."""
        looked_up = self.cache_hits + self.cache_misses
        hist = {bucket_label(b): self.batch_hist.get(bucket_label(b), 0) for b in BATCH_BUCKETS}
        hist[f">{BATCH_BUCKETS[-1]}"] = self.batch_hist.get(f">{BATCH_BUCKETS[-1]}", 0)
        return {
            "uptime_s": round(time.time() - self.started_at, 3),
            "requests": {"total": 0, "2xx": 0, "4xx": 0, "5xx": 0} | dict(self.requests),
            "queries": self.queries,
            "batches": {
                "count": self.batches,
                "queries": self.batched_queries,
                "mean_size": round(self.batched_queries / self.batches, 3) if self.batches else 0.0,
                "max_size": self.batch_max,
                "histogram": hist,
            },
            "latency": {
                "request": self.request_latency.summary(),
                "encode": self.encode_latency.summary(),
                "queue_wait": self.queue_wait.summary(),
            },
            "histograms": {"queue_wait_seconds": self.queue_wait_hist.to_dict(),
                           "encode_seconds": self.encode_hist.to_dict()},
            "rejected": self.rejected,
            "batch_splits": self.batch_splits,
            "cache": {
                "hits": self.cache_hits,
                "misses": self.cache_misses,
                "bypassed": self.cache_bypassed,
                "hit_rate": round(self.cache_hits / looked_up, 6) if looked_up else 0.0,
                "writes": self.writes,
                "write_errors": self.write_errors,
                "writes_dropped": self.writes_dropped,
                "store_errors": self.store_errors,
                "lookup_errors": self.lookup_errors,
                "bad_records": self.bad_records,
                "foreign_kept": self.foreign_kept,
                "write_conflicts": self.write_conflicts,
                "shutdown_dropped": self.shutdown_dropped,
            },
            "encoder_errors": self.encoder_errors,
        }


def to_prometheus(snap: dict[str, object], prefix: str = "searchsage_serve") -> str:
    """Prometheus text exposition of a :meth:`ServiceMetrics.snapshot` (counters, gauges, histogram)."""
    lines: list[str] = []
    req = snap["requests"]
    assert isinstance(req, dict)
    lines.append(f"# TYPE {prefix}_requests_total counter")
    for cls in ("2xx", "4xx", "5xx"):
        lines.append(f'{prefix}_requests_total{{status="{cls}"}} {req.get(cls, 0)}')
    lines += [f"# TYPE {prefix}_queries_total counter", f"{prefix}_queries_total {snap['queries']}"]
    batches = snap["batches"]
    assert isinstance(batches, dict)
    lines.append(f"# TYPE {prefix}_batch_size histogram")
    cumulative = 0
    for label, count in batches["histogram"].items():
        cumulative += count
        le = "+Inf" if label.startswith(">") else label[2:]
        lines.append(f'{prefix}_batch_size_bucket{{le="{le}"}} {cumulative}')
    lines += [f"{prefix}_batch_size_sum {batches['queries']}", f"{prefix}_batch_size_count {batches['count']}"]
    latency = snap["latency"]
    assert isinstance(latency, dict)
    for name, hist in (snap.get("histograms") or {}).items():  # type: ignore[union-attr]
        lines.append(f"# TYPE {prefix}_{name} histogram")
        for le, count in hist["buckets"].items():
            lines.append(f'{prefix}_{name}_bucket{{le="{le}"}} {count}')
        lines += [f"{prefix}_{name}_sum {hist['sum']}", f"{prefix}_{name}_count {hist['count']}"]
    for key in ("rejected", "batch_splits", "encoder_errors"):
        if key in snap:
            lines += [f"# TYPE {prefix}_{key}_total counter", f"{prefix}_{key}_total {snap[key]}"]
    lines.append(f"# TYPE {prefix}_latency_ms gauge")
    for what, summary in latency.items():
        for q in ("p50", "p90", "p99"):
            lines.append(f'{prefix}_latency_ms{{kind="{what}",quantile="{q}"}} {summary[f"{q}_ms"]}')
    cache = snap["cache"]
    assert isinstance(cache, dict)
    for key in ("hits", "misses", "bypassed", "stale", "writes", "write_errors", "writes_dropped", "store_errors",
                "lookup_errors", "bad_records", "foreign_kept", "write_conflicts", "shutdown_dropped"):
        if key in cache:
            lines += [f"# TYPE {prefix}_cache_{key}_total counter", f"{prefix}_cache_{key}_total {cache[key]}"]
    lines += [f"# TYPE {prefix}_cache_hit_rate gauge", f"{prefix}_cache_hit_rate {cache['hit_rate']}"]
    store = snap.get("store")
    if isinstance(store, dict) and store.get("state") != "disabled":
        address = _label(redact_secrets(store.get("address") or ""))
        lines += [f"# TYPE {prefix}_store_up gauge",
                  f'{prefix}_store_up{{address="{address}"}} {int(store.get("state") == "ok")}']
    return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    """A Prometheus label value (backslash, quote and newline escaped)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
