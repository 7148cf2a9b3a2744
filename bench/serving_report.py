"""The serving benchmark's results: one row per load level, the issue's targets, the Markdown report."""

from __future__ import annotations

from dataclasses import dataclass, field

from serving_profile import profile_markdown


@dataclass
class LoadResult:
    """One load level. Latencies in milliseconds, throughput in queries per second."""

    mode: str
    kind: str  # "closed" (fixed concurrency) or "open" (fixed arrival rate)
    concurrency: int
    requests: int
    errors: int
    seconds: float
    qps: float
    p50_ms: float
    p99_ms: float
    mean_batch: float = 0.0
    target_rate: float | None = None
    #: CPU cores used meanwhile by processes other than the benchmark and its servers (None: unknown).
    others_cores: float | None = None


@dataclass
class BenchReport:
    bundle: str
    model_version: str
    dim: int
    offline_qps: float
    offline_qps_runs: list[float] = field(default_factory=list)
    #: Offline throughput in calls of the top concurrency's size, in arrival order: what a closed loop of
    #: that many one-query clients could reach with no HTTP at all (a batch cannot be sorted across requests).
    offline_chunked_qps: float = 0.0
    results: list[LoadResult] = field(default_factory=list)
    #: Where the time goes at the top concurrency, per batched mode (``serving_profile.Profile.to_dict``).
    profiles: list[dict[str, object]] = field(default_factory=list)
    checks: dict[str, object] = field(default_factory=dict)
    machine: dict[str, object] = field(default_factory=dict)
    settings: dict[str, object] = field(default_factory=dict)


def check_targets(report: BenchReport, rate: float) -> dict[str, object]:
    """The issue's targets at the highest concurrency, and the open-loop latency target."""
    top = max(r.concurrency for r in report.results if r.kind == "closed")
    b = next(r for r in report.results if r.mode == "batched" and r.kind == "closed" and r.concurrency == top)
    u = next(r for r in report.results if r.mode == "unbatched" and r.kind == "closed" and r.concurrency == top)
    o = next(r for r in report.results if r.mode == "batched" and r.kind == "open")
    share, speedup = b.qps / report.offline_qps, b.qps / max(u.qps, 1e-9)
    sustained = o.qps >= 0.97 * rate and o.errors == 0
    low = min(r.concurrency for r in report.results if r.kind == "closed")
    b1 = next(r for r in report.results if r.mode == "batched" and r.kind == "closed" and r.concurrency == low)
    u1 = next(r for r in report.results if r.mode == "unbatched" and r.kind == "closed" and r.concurrency == low)
    quiet = b1.qps / max(u1.qps, 1e-9)
    binary: dict[str, object] = {}
    bb = next((r for r in report.results if r.mode == "batched-binary" and r.kind == "closed" and r.concurrency == top),
              None)
    if bb is not None:
        bo = next(r for r in report.results if r.mode == "batched-binary" and r.kind == "open")
        bq = next(r for r in report.results if r.mode == "batched-binary" and r.kind == "closed" and r.concurrency == low)
        binary = {
            "binary_share_of_offline": round(bb.qps / report.offline_qps, 3),
            "binary_share_ok": bb.qps / report.offline_qps >= 0.8,
            "binary_quiet_over_unbatched": round(bq.qps / max(u1.qps, 1e-9), 3),
            "binary_open_loop_qps": bo.qps, "binary_open_loop_p99_ms": bo.p99_ms,
            "binary_p99_ok": bo.qps >= 0.97 * rate and bo.errors == 0 and bo.p99_ms <= 50.0,
        }
    return {
        "quiet_concurrency": low, "quiet_batched_over_unbatched": round(quiet, 3),
        "quiet_p50_ms": {"batched": b1.p50_ms, "unbatched": u1.p50_ms}, "quiet_target": 1.0, "quiet_ok": quiet >= 1.0,
        "concurrency": top,
        "share_of_offline": round(share, 3), "share_target": 0.8, "share_ok": share >= 0.8,
        "share_of_offline_chunked": round(b.qps / report.offline_chunked_qps, 3) if report.offline_chunked_qps else None,
        "speedup_vs_unbatched": round(speedup, 2), "speedup_target": 1.5, "speedup_ok": speedup >= 1.5,
        "open_loop_rate": rate, "open_loop_qps": o.qps, "open_loop_p99_ms": o.p99_ms,
        "p99_target_ms": 50.0, "p99_ok": sustained and o.p99_ms <= 50.0, **binary,
    }


def to_markdown(r: BenchReport) -> str:
    lines = [
        "# Serving benchmark (`searchsage serve`, loopback)", "",
        f"Bundle `{r.bundle}` (model_version `{r.model_version}`, D={r.dim}), {r.settings.get('variant')}, "
        f"{r.settings.get('threads')} onnxruntime threads, max wait {r.settings.get('max_wait_ms')} ms; "
        f"{r.machine.get('cpus')} CPUs, load average before {r.machine.get('loadavg_before')}.", "",
        f"Offline runtime throughput (BundleEncoder, batch 256, best of the runs before and after the "
        f"service runs {r.offline_qps_runs}): **{r.offline_qps:.0f} queries/s**.", "",
        f"Offline in arrival-order calls of {r.settings.get('chunk')} queries (the most a closed loop of that many "
        f"one-query clients can batch, with no HTTP): {r.offline_chunked_qps:.0f} queries/s.", "",
        "| mode | load | requests | q/s | p50 ms | p99 ms | mean batch | other tenants (cores) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for x in r.results:
        load = f"concurrency {x.concurrency}" if x.kind == "closed" else f"{x.target_rate:.0f} q/s open loop"
        lines.append(f"| {x.mode} | {load} | {x.requests} | {x.qps:.0f} | {x.p50_ms:.1f} | {x.p99_ms:.1f} | {x.mean_batch} "
                     f"| {'' if x.others_cores is None else x.others_cores} |")
    c = r.checks
    lines += [
        "", f"Quiet service (concurrency {c['quiet_concurrency']}): batched / unbatched = "
        f"{c['quiet_batched_over_unbatched']} (p50 {c['quiet_p50_ms']['batched']} vs {c['quiet_p50_ms']['unbatched']} ms; "
        f"target >= 1.0): {'met' if c['quiet_ok'] else 'NOT met'}",
        "", f"Targets at concurrency {c['concurrency']}:",
        f"- batched / offline = {c['share_of_offline']} (target >= 0.8): {'met' if c['share_ok'] else 'NOT met'}; "
        f"batched / offline in calls of {c['concurrency']} = {c['share_of_offline_chunked']}",
        f"- batched / unbatched = {c['speedup_vs_unbatched']}x (target >= 1.5x): {'met' if c['speedup_ok'] else 'NOT met'}",
        f"- open loop at {c['open_loop_rate']:.0f} q/s: achieved {c['open_loop_qps']:.0f} q/s, p99 {c['open_loop_p99_ms']} ms "
        f"(target <= 50 ms): {'met' if c['p99_ok'] else 'NOT met'}",
    ]
    if "binary_share_of_offline" in c:
        lines += [
            "", "With binary responses (`Accept: application/octet-stream`, mode batched-binary):",
            f"- batched / offline at concurrency {c['concurrency']} = {c['binary_share_of_offline']} (target >= 0.8): "
            f"{'met' if c['binary_share_ok'] else 'NOT met'}",
            f"- batched / unbatched (JSON) at concurrency {c['quiet_concurrency']} = {c['binary_quiet_over_unbatched']}",
            f"- open loop at {c['open_loop_rate']:.0f} q/s: achieved {c['binary_open_loop_qps']:.0f} q/s, p99 "
            f"{c['binary_open_loop_p99_ms']} ms (target <= 50 ms): {'met' if c['binary_p99_ok'] else 'NOT met'}",
        ]
    for p in r.profiles:
        lines += ["", *profile_markdown(p)]
    lines += [
        "", f"Reproduce: `{r.settings.get('command')}`", "",
    ]
    return "\n".join(lines)
