"""Scale check: a user ID table of a million rows trains and embeds every user within memory.

:func:`scale_check` builds an in-memory event log of ``n_users`` users (vectorised; each user engages
a few pins of one of ``n_types`` clusters), trains the full tower for ``steps`` steps (sparse ID
gradients, SparseAdam), then embeds every user in batches, and reports the time of each phase and
the process's resident memory after it plus the peak (``ru_maxrss``); CPU seconds are reported beside
wall seconds, which depend on how busy the machine is.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from encoders.homefeed.dataset import HomefeedData
from encoders.homefeed.events import EventLog


def rss_mb() -> float:
    """The current resident set size in MB (``/proc/self/status``; the peak where that is unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    """The process's peak resident set size in MB (``ru_maxrss``, KB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic_scale_data(n_users: int, n_pins: int = 20_000, dim: int = 64, events_per_user: float = 5.0,
                         n_types: int = 100, days: float = 60.0, seed: int = 0) -> HomefeedData:
    """An in-memory dataset of ``n_users`` users: pins in ``n_types`` clusters (``(N, dim)`` unit vectors),
    each user 1 + Poisson(``events_per_user``) events on pins of one cluster, times uniform over ``days``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_types, dim)).astype(np.float32)
    pin_type = np.arange(n_pins) % n_types
    pins = centres[pin_type] + 0.7 * rng.standard_normal((n_pins, dim)).astype(np.float32)
    pins /= np.linalg.norm(pins, axis=1, keepdims=True)
    counts = 1 + rng.poisson(events_per_user, size=n_users)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    user_type = rng.integers(0, n_types, size=n_users)
    per_type = n_pins // n_types
    event_type = np.repeat(user_type, counts)
    event_pins = event_type + n_types * rng.integers(0, per_type, size=len(event_type))
    times = 19_800.0 + rng.uniform(0.0, days, size=len(event_type))
    user_of = np.repeat(np.arange(n_users), counts)
    order = np.lexsort((times, user_of))
    width = len(str(n_users - 1))
    log = EventLog([f"u{i:0{width}d}" for i in range(n_users)], offsets, event_pins[order].astype(np.int64),
                   times[order], rng.integers(0, 3, size=len(event_type)).astype(np.int64))
    return HomefeedData(Path("<in-memory>"), [f"p{i}" for i in range(n_pins)], pins, log, None, [None] * n_pins)


def scale_check(n_users: int = 1_000_000, steps: int = 20, batch_size: int = 512, n_pins: int = 20_000,
                dim: int = 64, threads: int = 2, embed_batch: int = 8192, out: str | Path | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Build, train ``steps`` steps, embed all users; returns timings, table sizes and memory (MB)."""
    from encoders.homefeed.config import HomefeedTrainConfig
    from encoders.homefeed.embed import embed_requests
    from encoders.homefeed.run import load_run
    from encoders.homefeed.train import train_homefeed

    report: dict[str, Any] = {"n_users": n_users, "n_pins": n_pins, "dim": dim, "steps": steps,
                              "batch_size": batch_size, "threads": threads, "rss_mb": {"start": rss_mb()}}
    t0 = time.perf_counter()
    data = synthetic_scale_data(n_users, n_pins, dim)
    report["events"] = len(data.log.pins)
    report["seconds"] = {"build": round(time.perf_counter() - t0, 2)}
    report["rss_mb"]["data"] = rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(out) if out is not None else Path(tmp) / "run"
        config = HomefeedTrainConfig(data="<in-memory>", out=str(run_dir), eval_days=7.0, max_steps=steps,
                                     batch_size=batch_size, threads=threads, random_negatives=512,
                                     condition_rate=0.0, progress=progress, log_every=max(1, steps // 4))
        t0, c0 = time.perf_counter(), time.process_time()
        result = train_homefeed(config, data)
        report["cpu_seconds_train"] = round(time.process_time() - c0, 2)
        report["seconds"]["train"] = round(time.perf_counter() - t0, 2)
        report["seconds_per_step"] = round(result.wall_time_s / max(1, result.steps), 3)
        report["rss_mb"]["trained"] = rss_mb()
        run = load_run(run_dir)
        report["user_table_rows"] = run.config.user_rows
        report["user_table_mb"] = round(run.config.user_rows * run.config.id_dim * 4 / 2**20, 1)
        t0, c0 = time.perf_counter(), time.process_time()
        vectors = embed_requests(run, data, np.arange(n_users), float(data.log.times.max()) + 1e-6,
                                 batch_size=embed_batch, progress=progress)
        seconds = time.perf_counter() - t0
        report["seconds"]["embed_all"] = round(seconds, 2)
        report["cpu_seconds_embed_all"] = round(time.process_time() - c0, 2)  # wall time depends on the machine's load
        report["users_per_s"] = round(n_users / seconds)
        report["embeddings"] = {"shape": list(vectors.shape), "dtype": str(vectors.dtype),
                                "finite": bool(np.isfinite(vectors).all()),
                                "mean_norm": float(np.linalg.norm(vectors, axis=1).mean())}
        report["rss_mb"]["embedded"] = rss_mb()
        report["final_loss"] = result.final_loss
    report["peak_rss_mb"] = round(peak_rss_mb(), 1)
    report["rss_mb"] = {k: round(v, 1) for k, v in report["rss_mb"].items()}
    return report
