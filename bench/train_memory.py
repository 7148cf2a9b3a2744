"""Peak memory of the training data pipeline, in memory vs ``--stream``, at 1× and 10× the engagements.

For each size a synthetic dataset is written: ``--pins`` pin ids, engagements with Zipf pin
popularity (exponent 1.1), three-word queries from a 5,000-word vocabulary, 70% organic / 30%
shopping, row groups of ``--row-group`` rows (65,536). Then, in a fresh process per (pipeline, size), the pipeline
is built and one epoch of batches drawn (``--batch-size``, ``--max-per-pin``, the default 50/50
blend):

* ``in_memory``: ``read_table`` + ``training_pairs`` + ``PairSampler`` + known positives (dict of sets);
* ``stream``: ``scan_engagements`` (pass 1, a sample of ``--sample-pairs`` pairs) +
  ``StreamingSampler`` (its counting pass) + compact known positives (``--stream-buffer`` pairs in
  the shuffle buffer).

Reported: the pipeline's RSS growth, i.e. the process's peak RSS (``ru_maxrss``) minus its RSS just
before the pipeline (after the imports, the pin ids and one warm-up read of the file's first row
group through both readers, so that neither pipeline pays for loading Arrow's code), the wall time, and per pipeline the growth
ratio 10× / 1×. Writes ``bench/results/train_memory.{json,md}``.

    .venv/bin/python bench/train_memory.py --pairs 100000 --scale 10
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# bench/abtest.py would shadow the abtest package when run as a script from this folder
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

PIPELINES = ("in_memory", "stream")


def write_engagements(path: Path, n_pairs: int, n_pins: int, seed: int, row_group: int = 65_536) -> None:
    """The synthetic engagements (module docstring), written chunk by chunk."""
    from datetime import datetime, timezone

    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_pins + 1) ** 1.1
    pop /= pop.sum()
    words = np.array([f"w{i}" for i in range(5_000)], dtype=object)
    ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
    schema = pa.schema([("query", pa.string()), ("pin_id", pa.string()), ("task", pa.string()),
                        ("action", pa.string()), ("timestamp", pa.timestamp("us", tz="UTC"))])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, n_pairs, row_group):
            n = min(row_group, n_pairs - start)
            w = words[rng.integers(0, len(words), size=(n, 3))]
            writer.write_table(pa.table({
                "query": [f"{a} {b} {c}" for a, b, c in w], "pin_id": [f"p{i}" for i in rng.choice(n_pins, n, p=pop)],
                "task": np.where(rng.random(n) < 0.7, "organic", "shopping").tolist(), "action": ["click"] * n,
                "timestamp": pa.array([ts] * n, pa.timestamp("us", tz="UTC")),
            }, schema=schema))


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() // 1024


def run_pipeline(pipeline: str, path: Path, n_pins: int, batch_size: int, max_per_pin: int, buffer: int,
                 sample_pairs: int) -> dict:
    """Build ``pipeline`` over ``path``, draw one epoch; the RSS growth and wall time (this process)."""
    from encoders.data.schema import read_table
    from encoders.train.sampler import PairSampler, training_pairs
    from encoders.train.streaming import StreamingSampler, read_batches, row_groups, scan_engagements

    pin_ids = [f"p{i}" for i in range(n_pins)]
    pin_index = {p: i for i, p in enumerate(pin_ids)}
    warm = pq.ParquetFile(path).read_row_group(0).num_rows + sum(
        rb.num_rows for rb in read_batches(row_groups(path)[0], ["query", "pin_id", "task"]))
    before = _rss_kb()
    t0 = time.perf_counter()
    sampler: PairSampler | StreamingSampler
    if pipeline == "in_memory":
        pairs = training_pairs(read_table(path, "engagements"), pin_index)
        sampler = PairSampler(pairs, batch_size, 0, max_per_pin)
        known = pairs.positives_by_query()
        n_pairs, n_known = len(pairs), sum(len(s) for s in known.values())
    else:
        streamed = scan_engagements(path, pin_ids, None, None, 0.5, False, 0, sample_pairs=sample_pairs)
        sampler = StreamingSampler(streamed, batch_size, 0, max_per_pin, buffer=buffer)
        n_pairs, n_known = len(streamed), len(streamed.known.pins)
    per_epoch = sampler.batches_per_epoch()
    it = iter(sampler)
    rows = sum(len(next(it).queries) for _ in range(per_epoch))
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    del warm
    return {"pipeline": pipeline, "pairs": n_pairs, "known_pairs": n_known, "batches": per_epoch, "rows": rows,
            "rss_before_mb": round(before / 1024, 1), "peak_rss_mb": round(peak / 1024, 1),
            "pipeline_rss_mb": round((peak - before) / 1024, 1), "wall_s": round(wall, 2)}


def _child(args: argparse.Namespace, pipeline: str, path: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", pipeline, "--data", str(path),
           "--pins", str(args.pins), "--batch-size", str(args.batch_size), "--max-per-pin", str(args.max_per_pin),
           "--stream-buffer", str(args.stream_buffer), "--sample-pairs", str(args.sample_pairs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{pipeline} on {path} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=100_000, help="engagements at 1× (default 100,000)")
    ap.add_argument("--scale", type=int, default=10, help="the larger size, as a multiple (default 10)")
    ap.add_argument("--pins", type=int, default=50_000, help="pins in the catalogue (default 50,000)")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--max-per-pin", type=int, default=20)
    ap.add_argument("--stream-buffer", type=int, default=65_536)
    ap.add_argument("--sample-pairs", type=int, default=100_000, help="--stream's pair sample (default 100,000)")
    ap.add_argument("--row-group", type=int, default=65_536, help="rows per row group written (default 65,536)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="runs/bench_train_memory", help="where the synthetic data is written")
    ap.add_argument("--out", default=str(_HERE / "results"), help="directory of train_memory.{json,md}")
    ap.add_argument("--child", choices=PIPELINES, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_pipeline(args.child, Path(args.data), args.pins, args.batch_size, args.max_per_pin,
                                      args.stream_buffer, args.sample_pairs)))
        return 0

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for mult in (1, args.scale):
        n = args.pairs * mult
        path = work / f"engagements_{n}_rg{args.row_group}_s{args.seed}.parquet"
        if not path.exists():
            write_engagements(path, n, args.pins, args.seed, args.row_group)
        for pipeline in PIPELINES:
            rows.append({"size": f"{mult}x", **_child(args, pipeline, path)})
            print(json.dumps(rows[-1]), flush=True)
    growth = {}
    for pipeline in PIPELINES:
        small, large = (r["pipeline_rss_mb"] for r in rows if r["pipeline"] == pipeline)
        growth[pipeline] = round(large / max(small, 0.1), 2)
    report = {"config": {k: v for k, v in vars(args).items() if k not in ("child", "data", "out")}, "runs": rows,
              "growth_ratio": growth}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "train_memory.json").write_text(json.dumps(report, indent=2))
    lines = ["# Training data pipeline: peak memory, in memory vs --stream", "",
             f"`python bench/train_memory.py --pairs {args.pairs} --scale {args.scale} --pins {args.pins}` "
             f"(batch {args.batch_size}, max per pin {args.max_per_pin}, stream buffer {args.stream_buffer}, "
             f"sample {args.sample_pairs}, row groups of {args.row_group}); "
             "pipeline RSS = peak RSS − RSS before the pipeline; one epoch drawn.", "",
             "| size | pipeline | pairs | batches | pipeline RSS (MB) | peak RSS (MB) | wall (s) |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['size']} | {r['pipeline']} | {r['pairs']:,} | {r['batches']:,} | {r['pipeline_rss_mb']} | "
              f"{r['peak_rss_mb']} | {r['wall_s']} |" for r in rows]
    lines += ["", "Growth of the pipeline RSS from 1× to " + f"{args.scale}×: "
              + ", ".join(f"{p} {g}×" for p, g in growth.items()), ""]
    (out / "train_memory.md").write_text("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
