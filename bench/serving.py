"""Benchmark ``searchsage serve``: throughput and latency, batched vs unbatched, on loopback.

One run measures, on the same machine and bundle:

1. the runtime's own offline throughput (``BundleEncoder.encode`` at batch 256, no HTTP) — the
   ceiling the service should approach;
2. closed-loop load at concurrency 1, 8, 32, 64 (each client sends one query per request, as a
   ranker would, on a keep-alive connection) against the service with dynamic batching and
   with ``--no-batching``; every level stops after ``--requests`` requests or ``--duration`` s, run
   in ``--rounds`` slices that alternate between the modes (the machine may be shared);
   mode ``batched-binary`` is the batched service asked for binary responses
   (``Accept: application/octet-stream``: float32 bytes instead of JSON numbers);
3. open-loop load at a fixed arrival rate (default 300 queries/s, up to 64 in flight):
   latency is measured from each request's scheduled send time, so queueing is counted.

The server runs in a subprocess (its own onnxruntime threads); the client is a raw asyncio
HTTP client that does not parse responses. Writes ``bench/results/serving.json`` and ``.md``.

    python bench/serving.py --bundle runs/serve-bench-bundle          # full run (MiniLM bundle)
    python bench/serving.py --bundle BUNDLE --quick --out /tmp/x       # seconds, for tests
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, Path(__file__).resolve().parent):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from serving_load import Server, closed_loop, open_loop  # noqa: E402
from serving_profile import (  # noqa: E402
    Profile,
    cpu_seconds_of,
    machine_busy_seconds,
    own_cpu_seconds,
    process_cpu_seconds,
)
from serving_report import BenchReport, LoadResult, check_targets, to_markdown  # noqa: E402

from encoders.serving.client import EmbedClient  # noqa: E402
from encoders.serving.config import ServeConfig  # noqa: E402

WORDS = tuple(
    ["angle", "bracket", "steel", "shelf", "oak", "table", "pine", "door", "white", "paint", "brush", "cordless", "drill", "led", "bulb", "ceiling", "fan", "garden", "hose", "kitchen", "faucet", "bathroom", "vanity", "tile", "floor", "wood", "screws", "deck", "stain", "outdoor", "light", "patio", "chair", "storage", "bin", "wire", "rack", "copper", "pipe", "pvc", "fitting", "toilet", "seat", "shower", "head", "grill", "cover", "lawn", "mower", "leaf", "blower", "extension", "cord", "smoke", "detector", "door", "knob", "cabinet", "hinge", "window", "blinds", "rug"]
)


def make_queries(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct-ish synthetic queries of 1–4 words (short, like real search queries)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        k = rng.choice((1, 2, 2, 3, 3, 4))
        out.append(" ".join(rng.choice(WORDS) for _ in range(k)) + (f" {i % 97}" if i % 3 == 0 else ""))
    return out


def offline_throughput(bundle: Path, queries: list[str], threads: int, variant: str = "fp32",
                       chunk: int | None = None, group_overhead: float | None = None) -> tuple[float, str, int]:
    """Queries/s of ``BundleEncoder.encode`` at batch 256 (after one warm-up call); with ``chunk``,
    encode calls of ``chunk`` queries in order instead of one call for all (sorted by length); with
    ``group_overhead`` too, each chunk goes through ``BundleEncoder.encode_grouped`` (calls of similar
    length, as the service's batcher runs a batch)."""
    from encoders.runtime import BundleEncoder

    enc = BundleEncoder(bundle, variant=variant, threads=threads, batch_size=256)
    enc.encode(queries[:256])
    t0 = time.perf_counter()
    step = chunk or len(queries)
    for start in range(0, len(queries), step):
        texts = queries[start : start + step]
        if group_overhead is None:
            enc.encode(texts)
        else:
            enc.encode_grouped(texts, group_overhead)
    return len(queries) / (time.perf_counter() - t0), enc.model_version, enc.dim


def _body(q: str) -> bytes:
    return json.dumps({"queries": [q]}).encode()


BINARY_HEADERS = {"Accept": "application/octet-stream"}
#: The batcher's default call overhead (tokens), used to group the offline calls of the served batch size.
GROUP_OVERHEAD = ServeConfig.call_overhead_tokens


def base_mode(mode: str) -> str:
    """The service a mode runs against: ``batched-binary`` is the batched service, binary answers."""
    return mode.removesuffix("-binary")


def summarise(mode: str, kind: str, conc: int, lat: list[float], errors: int, secs: float,
              batches: tuple[int, int], rate: float | None = None) -> LoadResult:
    ms = np.asarray(lat) * 1000.0 if lat else np.zeros(1)
    return LoadResult(
        mode=mode, kind=kind, concurrency=conc, requests=len(lat), errors=errors, seconds=round(secs, 3),
        qps=round(len(lat) / secs, 1) if secs > 0 else 0.0, p50_ms=round(float(np.percentile(ms, 50)), 2),
        p99_ms=round(float(np.percentile(ms, 99)), 2),
        mean_batch=round(batches[1] / batches[0], 2) if batches[0] else 0.0, target_rate=rate,
    )


@dataclass
class Sample:
    """Raw observations of one or more runs of one mode at one load level."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    batches: int = 0
    batched_queries: int = 0
    others_cpu_s: float | None = 0.0
    wall_s: float = 0.0
    encode_s: float = 0.0  # the service's encoder seconds (its encode_seconds histogram)
    server_cpu_s: float | None = 0.0  # CPU seconds of the server process
    client_cpu_s: float = 0.0  # CPU seconds of this process (the load generator)

    def add(self, other: Sample) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.seconds += other.seconds
        self.batches += other.batches
        self.batched_queries += other.batched_queries
        self.wall_s += other.wall_s
        self.encode_s += other.encode_s
        self.client_cpu_s += other.client_cpu_s
        self.server_cpu_s = None if self.server_cpu_s is None or other.server_cpu_s is None else \
            self.server_cpu_s + other.server_cpu_s
        if self.others_cpu_s is None or other.others_cpu_s is None:
            self.others_cpu_s = None
        else:
            self.others_cpu_s += other.others_cpu_s


async def sample(server: Server, mode: str, kind: str, conc: int, args: argparse.Namespace, bodies: list[bytes],
                 pids: list[int], requests: int, duration: float) -> Sample:
    """One run of ``mode`` against ``server``: latencies, errors, batch counts from its /metrics and
    the CPU other processes used meanwhile (machine busy time minus the benchmark's and its servers'),
    and the CPU of this server and of the client."""
    before = await server.counters()
    srv0, own0 = process_cpu_seconds(server.proc.pid), own_cpu_seconds()
    ours0, busy0, w0 = cpu_seconds_of(pids), machine_busy_seconds(), time.perf_counter()
    headers = BINARY_HEADERS if mode.endswith("-binary") else None
    if kind == "closed":
        lat, err, secs = await closed_loop(server.port, bodies, conc, requests, duration, headers)
    else:
        lat, err, secs = await open_loop(server.port, bodies, args.rate, args.rate_duration, conc, headers)
    ours1, busy1, wall = cpu_seconds_of(pids), machine_busy_seconds(), time.perf_counter() - w0
    srv1, own1 = process_cpu_seconds(server.proc.pid), own_cpu_seconds()
    after = await server.counters()
    others = None
    if ours0 is not None and ours1 is not None and busy0 is not None and busy1 is not None:
        others = max(0.0, busy1 - busy0 - (ours1 - ours0))
    server_cpu = None if srv0 is None or srv1 is None else srv1 - srv0
    return Sample(lat, err, secs, after[0] - before[0], after[1] - before[1], others, wall,
                  after[2] - before[2], server_cpu, own1 - own0)


def finish(mode: str, kind: str, conc: int, s: Sample, args: argparse.Namespace) -> LoadResult:
    r = summarise(mode, kind, conc, s.latencies, s.errors, s.seconds, (s.batches, s.batched_queries),
                  rate=args.rate if kind == "open" else None)
    if s.others_cpu_s is not None and s.wall_s > 0:
        r.others_cores = round(s.others_cpu_s / s.wall_s, 2)
    load = f"c={conc:<3d}" if kind == "closed" else f"{args.rate:.0f}/s"
    print(f"  {mode:14s} {load:7s} {r.qps:8.1f} q/s  p50 {r.p50_ms:8.2f} ms  p99 {r.p99_ms:8.2f} ms  "
          f"mean batch {r.mean_batch}  other tenants {r.others_cores} cores", flush=True)
    return r


async def bench_services(bundle: Path, args: argparse.Namespace,
                         bodies: list[bytes]) -> tuple[list[LoadResult], dict[str, Sample]]:
    """Both services run side by side (an idle one costs nothing); each closed-loop level is run in
    ``--rounds`` slices that alternate between the modes, so drifts in what else runs on the machine
    hit every mode alike. Returns the results and the batched modes' raw samples at the top concurrency."""
    modes = args.modes.split(",")
    extra = ("--variant", args.variant, *args.server_args.split())
    # One server per service: batched and batched-binary share the batched one.
    servers = {b: Server(bundle, b == "batched", args.threads, args.max_wait_ms, extra)
               for b in dict.fromkeys(base_mode(m) for m in modes)}
    out: list[LoadResult] = []
    top_samples: dict[str, Sample] = {}
    try:
        pids = [server.proc.pid for server in servers.values()]
        for server in servers.values():
            await server.wait_ready()
            await closed_loop(server.port, bodies, 4, 4 * 8, 10.0)  # warm-up: connections, sessions
        for mode in modes:  # each mode gets the answer format it claims to measure
            async with EmbedClient("127.0.0.1", servers[base_mode(mode)].port) as c:
                binary = mode.endswith("-binary")
                status, head, _ = await c.exchange("POST", "/embed", bodies[0], BINARY_HEADERS if binary else None)
            want = "application/octet-stream" if binary else "application/json"
            if status != 200 or head.get("content-type") != want:
                raise RuntimeError(f"mode {mode}: expected a 200 {want} answer, got {status} {head.get('content-type')}")
        rounds = max(1, args.rounds)
        for conc in args.concurrency:  # each level: `rounds` slices, modes alternating slice by slice
            acc = {mode: Sample() for mode in modes}
            for _ in range(rounds):
                for mode in modes:
                    acc[mode].add(await sample(servers[base_mode(mode)], mode, "closed", conc, args, bodies, pids,
                                               max(1, args.requests // rounds), args.duration / rounds))
            out += [finish(mode, "closed", conc, acc[mode], args) for mode in modes]
            top_samples = {m: acc[m] for m in modes if base_mode(m) == "batched"}
        top = max(args.concurrency)
        for mode in modes:
            got = await sample(servers[base_mode(mode)], mode, "open", top, args, bodies, pids, 0, 0.0)
            out.append(finish(mode, "open", top, got, args))
    finally:
        for server in servers.values():
            server.stop()
    return out, top_samples


def build_profiles(samples: dict[str, Sample], report: BenchReport, args: argparse.Namespace,
                   queries: list[str]) -> list[dict[str, object]]:
    """A :class:`Profile` per batched mode at the top concurrency; the offline run in calls of the
    served mean batch size is measured here, after the services stopped."""
    out = []
    at_batch: dict[int, float] = {}
    for mode, s in samples.items():
        n = len(s.latencies)
        if not n or not s.batches:
            continue
        size = max(1, round(s.batched_queries / s.batches))
        if size not in at_batch:
            at_batch[size] = offline_throughput(args.bundle, queries[: args.offline_queries], args.threads,
                                                args.variant, chunk=size, group_overhead=GROUP_OVERHEAD)[0]
        out.append(Profile(mode, max(args.concurrency), n, s.seconds, round(s.batched_queries / s.batches, 2),
                           round(s.encode_s, 4), s.server_cpu_s, round(s.client_cpu_s, 3), report.offline_qps,
                           round(at_batch[size], 1)).to_dict())
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", type=Path, required=True, help="bundle dir (query tower) from `searchsage export`")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="results directory")
    p.add_argument("--quick", action="store_true", help="tiny run (seconds) for tests")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8, 32, 64])
    p.add_argument("--requests", type=int, default=3000, help="requests per closed-loop level (cap)")
    p.add_argument("--duration", type=float, default=12.0, help="seconds per closed-loop level (cap)")
    p.add_argument("--rate", type=float, default=300.0, help="open-loop arrival rate, queries/s")
    p.add_argument("--rate-duration", type=float, default=10.0, help="open-loop seconds")
    p.add_argument("--server-args", default="", help="extra `searchsage serve` options, e.g. '--ort-spin'")
    p.add_argument("--modes", default="batched,batched-binary,unbatched",
                   help="which services to run (batched-binary: the batched service, binary responses)")
    p.add_argument("--rounds", type=int, default=3,
                   help="closed-loop levels run in this many slices, alternating modes (drift on a shared machine "
                        "hits every mode alike)")
    p.add_argument("--offline-queries", type=int, default=2048)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--variant", choices=("fp32", "int8"), default="fp32", help="served and measured variant")
    p.add_argument("--max-wait-ms", type=float, default=ServeConfig.max_wait_ms,
                   help="the service's --max-wait-ms (default: the service's own default)")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    if not {"batched", "unbatched"} <= set(modes) or not set(modes) <= {"batched", "batched-binary", "unbatched"}:
        p.error(f"--modes must include batched and unbatched (and may add batched-binary), got {args.modes!r}")
    if args.quick:
        args.concurrency, args.requests, args.duration = [1, 8], 40, 3.0
        args.rate, args.rate_duration, args.offline_queries = 50.0, 1.0, 256
    return args


def main(argv: list[str] | None = None) -> BenchReport:
    args = parse_args(argv)
    queries = make_queries(max(args.offline_queries, 4096))
    bodies = [_body(q) for q in queries]
    load_before = os.getloadavg()[0]
    print(f"offline: BundleEncoder at batch 256 on {args.offline_queries} queries", flush=True)
    qps, version, dim = offline_throughput(args.bundle, queries[: args.offline_queries], args.threads, args.variant)
    print(f"  {qps:.0f} queries/s", flush=True)
    report = BenchReport(str(args.bundle), version, dim, round(qps, 1))
    report.results, top_samples = asyncio.run(bench_services(args.bundle, args, bodies))
    # Other processes share the cores: measure the ceiling again afterwards and keep the higher one.
    qps_after = offline_throughput(args.bundle, queries[: args.offline_queries], args.threads, args.variant)[0]
    print(f"offline again: {qps_after:.0f} queries/s", flush=True)
    report.offline_qps_runs = [round(qps, 1), round(qps_after, 1)]
    report.offline_qps = round(max(qps, qps_after), 1)
    chunk = max(args.concurrency)
    report.offline_chunked_qps = round(offline_throughput(args.bundle, queries[: args.offline_queries], args.threads,
                                                          args.variant, chunk=chunk)[0], 1)
    print(f"offline in calls of {chunk}: {report.offline_chunked_qps:.0f} queries/s", flush=True)
    report.profiles = build_profiles(top_samples, report, args, queries)
    report.checks = check_targets(report, args.rate)
    report.machine = {"cpus": os.cpu_count(), "python": platform.python_version(),
                      "loadavg_before": round(load_before, 2), "loadavg_after": round(os.getloadavg()[0], 2)}
    report.settings = {"chunk": chunk, "variant": args.variant, "threads": args.threads, "max_wait_ms": args.max_wait_ms, "requests": args.requests,
                       "duration_s": args.duration, "quick": args.quick,
                       "command": "python bench/serving.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serving.json").write_text(json.dumps(asdict(report), indent=2))
    (args.out / "serving.md").write_text(to_markdown(report))
    print(to_markdown(report))
    return report


if __name__ == "__main__":
    main()
