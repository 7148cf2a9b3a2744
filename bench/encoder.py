"""Encoder benchmark: torch eager vs onnxruntime fp32 vs int8 (per-token), same run, same queries.

Measures queries/s at batch 1, 32 and 256 (``--threads`` intra-op threads for every engine),
p50/p99 latency at batch 1, and the quality figures that make the speed admissible (int8 cosine
to fp32, fp32 max |Δ| to torch, batched-vs-single cosine). Engines are interleaved inside every
repeat so they share the machine's load; the best repeat counts, ratios are what to compare.

    python bench/encoder.py                      # zero-shot MiniLM tower, Home Depot queries (--homedepot CSV)
    python bench/encoder.py --run runs/hd        # a trained run
    python bench/encoder.py --quick --base-model DIR --out-dir /tmp/b   # tiny smoke run (tests)

Writes ``<out-dir>/encoder.json`` and ``<out-dir>/encoder.md``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Idle OpenMP threads must not spin: the engines are interleaved in one process on few cores, and
# a spinning pool of one engine would steal the cores of the next (onnxruntime sessions here are
# made with spinning off too). Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

#: Default of ``--homedepot``: relative to the directory you run the bench from (the repository root).
HOMEDEPOT = Path("../shared/data/homedepot/train.csv")
ENGINES = ("torch eager", "torch eager, runtime batching", "onnxruntime fp32", "onnxruntime int8")


@dataclass
class EngineResult:
    """Throughput (queries/s, best and median of repeats) per batch size, latency at batch 1 (ms)."""

    qps: dict[int, float] = field(default_factory=dict)
    qps_median: dict[int, float] = field(default_factory=dict)
    p50_ms: float = 0.0
    p99_ms: float = 0.0


def load_queries(path: Path | None, n: int) -> tuple[list[str], str]:
    """``n`` distinct real queries (Home Depot ``search_term``, latin-1) or synthetic ones → (queries, source)."""
    from encoders.normalize import normalize_query

    if path is not None and path.is_file():
        seen: dict[str, None] = {}
        with path.open(encoding="latin-1", newline="") as fh:
            for row in csv.DictReader(fh):
                q = normalize_query(row["search_term"])
                if q:
                    seen.setdefault(q)
                if len(seen) >= n:
                    break
        return list(seen), f"homedepot:{path}"
    rng = np.random.default_rng(0)
    words = ["angle", "bracket", "led", "bulb", "cordless", "drill", "vanity", "sink", "oak", "table", "garden", "hose", "white", "paint", "toilet", "seat", "kitchen", "faucet", "copper", "pipe", "storage", "bin", "shower", "head", "wood", "screws", "door", "knob", "tile", "saw", "rug", "grill"]
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 6)))) for _ in range(n)], "synthetic"


def prepare_bundle(args: argparse.Namespace, work: Path) -> tuple[Path, object, object]:
    """Export (or reuse) a bundle; return (query tower dir, torch tower, transformers tokenizer)."""
    from encoders.export.bundle import export_tower, load_run_tower
    from encoders.export.config import ExportOptions
    from encoders.export.parity import ParityThresholds
    from encoders.model.base_model import resolve_base_model
    from encoders.model.tower import QueryTower, TowerConfig, load_tokenizer

    if args.run:
        tower = load_run_tower(args.run, args.base_model)
    else:
        base = resolve_base_model(args.base_model)
        tower = QueryTower(TowerConfig(str(base), pooling="mean", max_length=args.max_length)).eval()
    thresholds = ParityThresholds(1.0, 0.0, 0.0) if args.quick else ParityThresholds()
    d = work / "query"
    try:
        export_tower(tower, "query", d, ExportOptions(progress=False, thresholds=thresholds))
    except ValueError as exc:  # ParityError: keep going in --quick, report the figures
        if not args.quick:
            raise
        print(f"warning: {exc}", file=sys.stderr)
    return d, tower, load_tokenizer(tower.config.base_model)


def time_throughput(fn: Callable[[list[str]], object], queries: list[str], batch: int) -> float:
    """Queries/s of ``fn`` over ``queries`` in calls of ``batch`` rows (wall clock)."""
    t0 = time.perf_counter()
    for i in range(0, len(queries), batch):
        fn(queries[i : i + batch])
    return len(queries) / (time.perf_counter() - t0)


def time_latency(fn: Callable[[list[str]], object], queries: list[str]) -> list[float]:
    """Per-call milliseconds of ``fn([q])`` for each query."""
    out = []
    for q in queries:
        t0 = time.perf_counter()
        fn([q])
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def run(args: argparse.Namespace) -> dict:
    import torch

    from encoders.export.parity import row_cosine
    from encoders.model.tower import encode_texts
    from encoders.runtime import BundleEncoder

    torch.set_num_threads(args.threads)
    queries, source = load_queries(args.queries, args.n)
    single = queries[: args.single_n]
    with tempfile.TemporaryDirectory(prefix="bench-encoder-") as tmp:
        tower_dir, tower, tok = prepare_bundle(args, Path(args.bundle_dir) if args.bundle_dir else Path(tmp))
        enc = {v: {b: BundleEncoder(tower_dir, v, threads=args.threads, batch_size=b) for b in args.batch_sizes}
               for v in ("fp32", "int8")}
        max_len = enc["fp32"][args.batch_sizes[0]].manifest.max_length

        def torch_fn(b: int) -> Callable[[list[str]], object]:
            return lambda qs: encode_texts(tower, tok, qs, max_len, batch_size=b)

        def torch_planned(b: int) -> Callable[[list[str]], object]:
            """The runtime's batching (length-sorted, <= max_tokens per call) around the torch tower."""
            e = enc["fp32"][b]

            @torch.inference_mode()
            def fn(qs: list[str]) -> object:
                rows = e.tokenizer.encode(e.prepare(qs))
                order = np.argsort([len(r) for r in rows], kind="stable")
                for idx in e._plan(order, rows):
                    t = e.tokenizer.pad([rows[i] for i in idx])
                    tower(torch.from_numpy(t.input_ids), torch.from_numpy(t.attention_mask))

            return fn

        fns = {"torch eager": torch_fn, "torch eager, runtime batching": torch_planned,
               "onnxruntime fp32": lambda b: enc["fp32"][b].encode,
               "onnxruntime int8": lambda b: enc["int8"][b].encode}
        res = {e: EngineResult() for e in ENGINES}
        load_before = os.getloadavg()
        for e in ENGINES:  # warm-up
            fns[e](max(args.batch_sizes))(queries[: max(args.batch_sizes)])
        runs: dict[tuple[str, int], list[float]] = {}
        lat: dict[str, list[float]] = {e: [] for e in ENGINES}
        for _ in range(args.repeats):
            for b in args.batch_sizes:
                for e in ENGINES:
                    if b == 1:
                        ms = time_latency(fns[e](1), single)
                        lat[e] += ms
                        runs.setdefault((e, b), []).append(1e3 / statistics.mean(ms))
                    else:
                        runs.setdefault((e, b), []).append(time_throughput(fns[e](b), queries, b))
        for (e, b), v in runs.items():
            res[e].qps[b] = max(v)
            res[e].qps_median[b] = statistics.median(v)
        for e in ENGINES:
            if lat[e]:
                res[e].p50_ms = float(np.percentile(lat[e], 50))
                res[e].p99_ms = float(np.percentile(lat[e], 99))
        load_after = os.getloadavg()
        b = max(args.batch_sizes)
        ref = encode_texts(tower, tok, queries, max_len, batch_size=b).numpy()
        f32 = enc["fp32"][b].encode(queries)
        i8 = enc["int8"][b].encode(queries)
        cos8 = row_cosine(f32, i8)
        bvs = {}
        for v in ("fp32", "int8"):
            whole = BundleEncoder(tower_dir, v, threads=args.threads, batch_size=len(single), max_tokens=None)
            one = np.concatenate([whole.encode([q]) for q in single])
            c = row_cosine(whole.encode(single), one)
            bvs[v] = {"cos_mean": float(c.mean()), "cos_min": float(c.min())}
        manifest = enc["int8"][b].manifest
    t = res["torch eager"].qps
    return {
        "config": {"queries": source, "n": len(queries), "single_n": len(single), "threads": args.threads,
                   "batch_sizes": args.batch_sizes, "repeats": args.repeats, "max_length": max_len,
                   "base_model": manifest.base_model, "int8": manifest.source.get("quantize"),
                   "fused": manifest.source.get("fused"), "quick": args.quick},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__,
                    "loadavg_before": load_before, "loadavg_after": load_after},
        "runtime": {"max_tokens_per_call": enc["int8"][b].max_tokens, "sort_by_length": True},
        "engines": {e: asdict(r) for e, r in res.items()},
        "speedup_vs_torch": {e: {bb: r.qps[bb] / t[bb] for bb in r.qps} for e, r in res.items()},
        "quality": {"fp32_max_abs_vs_torch": float(np.abs(f32 - ref).max()),
                    "int8_cos_to_fp32": {"mean": float(cos8.mean()), "min": float(cos8.min())},
                    "batch_vs_single": bvs},
    }


def to_markdown(r: dict) -> str:
    """The README-ready table of a result dict from :func:`run`."""
    c, q = r["config"], r["quality"]
    bs = c["batch_sizes"]
    lines = [
        f"Encoder throughput, {c['base_model']} query tower, {c['n']} distinct queries ({c['queries'].split(':')[0]}), "
        f"max_length {c['max_length']}, {c['threads']} threads, best of {c['repeats']} interleaved repeats "
        f"(load avg {r['machine']['loadavg_before'][0]:.1f} → {r['machine']['loadavg_after'][0]:.1f}). "
        f"'torch eager' is the stock path (`encode_texts`: batches in input order, padded to their longest); "
        f"'runtime batching' wraps the same torch tower in the runtime's length-sorted calls of <= "
        f"{r['runtime']['max_tokens_per_call']} padded tokens, so onnxruntime's gain over it is the graph alone.",
        "",
        "| engine | " + " | ".join(f"q/s @ batch {b}" for b in bs) + " | p50 ms @1 | p99 ms @1 | "
        + " | ".join(f"× torch @{b}" for b in bs) + " |",
        "|---" * (3 + 2 * len(bs)) + "|",
    ]
    for e, er in r["engines"].items():
        qps = " | ".join(f"{er['qps'][str(b)] if str(b) in er['qps'] else er['qps'][b]:.0f}" for b in bs)
        sp = r["speedup_vs_torch"][e]
        ratio = " | ".join(f"{sp[str(b)] if str(b) in sp else sp[b]:.2f}" for b in bs)
        lines.append(f"| {e} | {qps} | {er['p50_ms']:.1f} | {er['p99_ms']:.1f} | {ratio} |")
    bvs = q["batch_vs_single"]
    lines += [
        "",
        f"Quality on the same queries: fp32 max |onnx − torch| = {q['fp32_max_abs_vs_torch']:.1e}; "
        f"int8 cosine to fp32 mean {q['int8_cos_to_fp32']['mean']:.4f}, min {q['int8_cos_to_fp32']['min']:.4f}; "
        f"batched-vs-single cosine min fp32 {bvs['fp32']['cos_min']:.6f}, int8 {bvs['int8']['cos_min']:.6f}.",
    ]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", type=Path, help="trained run directory (default: zero-shot tower of the base model)")
    p.add_argument("--base-model", help="local transformers directory (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--homedepot", "--queries", dest="queries", type=Path, default=HOMEDEPOT,
                   help=f"Home Depot train.csv whose search terms are the queries (default {HOMEDEPOT}; synthetic "
                   "queries if the file is missing)")
    p.add_argument("--n", type=int, default=2048, help="distinct queries for throughput (default 2048)")
    p.add_argument("--single-n", type=int, default=200, help="queries timed one by one at batch 1 (default 200)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 256])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-length", type=int, default=32, help="token limit of the zero-shot tower (default 32)")
    p.add_argument("--bundle-dir", help="keep the exported tower here instead of a temp dir")
    p.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    p.add_argument("--quick", action="store_true", help="tiny sizes, thresholds not enforced (for tests)")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.single_n, args.repeats = min(args.n, 64), min(args.single_n, 8), 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "encoder.json").write_text(json.dumps(result, indent=2) + "\n")
    md = to_markdown(result)
    (args.out_dir / "encoder.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
