"""Benchmark: aggregate + analyse N impression events (default 10M) in one run; seconds and peak RSS.

The logs are generated first (not timed) by the vectorised simulator over a dataset-free arena,
written as parquet part files like production logs. The timed step runs in a **fresh child
process** — ``abtest.pipeline.analyze_path``: validation, streaming aggregation (engine ``auto``:
numpy over record batches unless its counters exceed half of ``memory_limit``, then DuckDB), the
per-user analysis (CUPED, segments, guardrails), the daily/cumulative time series and the results
directory — and reports its own wall time, CPU time (all threads) and peak RSS (``VmHWM``: not
``ru_maxrss``, which inherits the generating parent's RSS across the fork), so generation never
inflates the memory number. The machine's load
average before and after the child is recorded too: on a shared machine wall time depends on it,
CPU time much less.

    .venv/bin/python bench/abtest.py                      # 10M impressions → bench/results/abtest.json/.md
    .venv/bin/python bench/abtest.py --events 100000000   # the streaming check (≈1 GB of temporary logs)
    .venv/bin/python bench/abtest.py --quick --results-dir /tmp/r   # tiny, for tests
    .venv/bin/python bench/abtest.py --events 100000000 --logs runs/logs100M   # reuse logs (kept, not timed)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# this file is named like the package: drop bench/ from the import path so `import abtest` finds the package
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

IMPRESSIONS_PER_USER = 245  # measured mean of the default SimConfig over 7 pre + 14 experiment days


def generate(logs: Path, events: int, seed: int = 0) -> dict:
    """Write about ``events`` impressions of simulated logs into ``logs`` (untimed)."""
    from abtest.simulate.engine import SimConfig, synthetic_arena
    from abtest.simulate.writer import write_simulated_logs

    users = max(200, events // IMPRESSIONS_PER_USER)
    cfg = SimConfig(n_users=users, days=14, pre_days=7, seed=seed)
    t0 = time.perf_counter()
    counts = write_simulated_logs(synthetic_arena(seed=seed, treatment_gain=0.02), cfg, logs,
                                  users_per_chunk=min(40_000, users))
    return {"users": users, "rows": counts, "seconds": time.perf_counter() - t0}


def peak_rss_mb() -> float:
    """This process's own peak RSS: ``VmHWM`` (Linux) — ``ru_maxrss`` would also count the parent's
    resident memory at the fork (the log generator's), which the kernel carries across ``exec``."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(logs: Path, out: Path, memory_limit: str, threads: int) -> dict:
    """The timed step (call in a fresh process): analyse ``logs`` → results under ``out``."""
    from abtest.aggregate import AggregateConfig
    from abtest.analysis import AnalysisConfig
    from abtest.pipeline import analyze_path

    t0 = time.perf_counter()
    res = analyze_path(logs, out, AnalysisConfig(control="control", memory_limit=memory_limit, threads=threads),
                       aggregate_config=AggregateConfig(memory_limit=memory_limit, threads=threads,
                                                        temp_dir=str(out / ".duckdb_tmp")))
    total = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds_total": total, "seconds_aggregate": res.aggregate.seconds if res.aggregate else None,
            "seconds_analysis": total - (res.aggregate.seconds if res.aggregate else 0.0),
            "cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": peak_rss_mb(),
            "engine": res.aggregate.engine if res.aggregate else None, "load_avg_1m_end": os.getloadavg()[0],
            "users": sum(res.analysis.arms.values()), "srm_passed": res.analysis.srm.passed,
            "out_dir": str(res.out_dir)}


def _markdown(r: dict) -> str:
    rows, c = r["rows"], r["child"]
    return "\n".join([
        "# A/B pipeline benchmark", "",
        f"Command: `{r['command']}`  ", f"Machine: {r['machine']}", "",
        "| impressions | clicks | searches | users | aggregate (s) | analysis (s) | total (s) | CPU (s) | "
        "peak RSS (MB) | load avg (1 min, before → after) |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {rows['impressions']:,} | {rows['clicks']:,} | {rows['searches']:,} | {c['users']:,} | "
        f"{c['seconds_aggregate']:.1f} | {c['seconds_analysis']:.1f} | {c['seconds_total']:.1f} | "
        f"{c['cpu_seconds']:.1f} | {c['peak_rss_mb']:.0f} | {r['load_avg_1m_start']:.1f} → {c['load_avg_1m_end']:.1f} |",
        "",
        f"Aggregation engine `{c['engine']}`; `memory_limit={r['memory_limit']}`, `threads={r['threads']}`; logs "
        + (f"generated beforehand in {r['generation_seconds']:.0f} s (not timed)" if r["generation_seconds"] is not None
           else "reused from an earlier run") + f"; on-disk logs {r['logs_mb']:.0f} MB. Total = validation + "
        "aggregation + analysis (CUPED, 3 segments, guardrails) + daily/cumulative series + results files, "
        "in a fresh process whose peak RSS and CPU time (all its threads) are reported. Wall time on a shared "
        "machine grows with the load average; CPU time is the load-independent cost.", "",
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=10_000_000, help="impressions to generate (default 10M)")
    ap.add_argument("--quick", action="store_true", help="tiny run (200k impressions) for tests")
    ap.add_argument("--memory-limit", default="1GB")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", type=Path, help="where to put the logs (default: a temp dir, removed)")
    ap.add_argument("--logs", type=Path, help="analyse these simulated logs instead of generating (kept)")
    ap.add_argument("--results-dir", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--child", nargs=2, metavar=("LOGS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(Path(args.child[0]), Path(args.child[1]), args.memory_limit, args.threads)))
        return 0
    events = 200_000 if args.quick else args.events
    work = Path(tempfile.mkdtemp(prefix="abtest-bench-", dir=args.workdir))
    try:
        if args.logs:
            logs = args.logs
            gen = {"rows": json.loads((logs / "simulation.json").read_text())["rows"], "seconds": None}
        else:
            logs = work / "logs"
            gen = generate(logs, events)
        logs_mb = sum(f.stat().st_size for f in logs.rglob("*") if f.is_file()) / 2**20
        cmd = [sys.executable, __file__, "--child", str(logs), str(work / "results"),
               "--memory-limit", args.memory_limit, "--threads", str(args.threads)]
        load_start = os.getloadavg()[0]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return proc.returncode
        child = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "command": "python bench/abtest.py" + (" --quick" if args.quick else f" --events {events}"),
        "machine": f"{platform.machine()}, {platform.processor() or platform.system()}, "
                   f"{os.cpu_count()} cores",
        "events_requested": events, "rows": gen["rows"], "generation_seconds": gen["seconds"],
        "logs_mb": logs_mb, "memory_limit": args.memory_limit, "threads": args.threads,
        "load_avg_1m_start": load_start, "child": child,
    }
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = "abtest_quick" if args.quick else ("abtest" if events == 10_000_000 else f"abtest_{events // 1_000_000}M")
    (args.results_dir / f"{stem}.json").write_text(json.dumps(report, indent=2))
    (args.results_dir / f"{stem}.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
