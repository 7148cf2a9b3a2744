"""``searchsage pins embed`` throughput: torch eager vs onnx-fp32 vs onnx-int8, same pins, same run.

Each repeat runs the real :func:`encoders.data.pin_embeddings.embed_pins` (``force=True``) once per
runtime, interleaved so they share the machine's load, on a copy of the pin texts (the source file
is only read). pins/s is the encoding alone (what ``pin_tower.json:seconds`` records: tokenisation
and batching included, model loading, the one-off ONNX export and the parquet write not); the wall
time of each call (everything) and the one-off export are reported too. The best repeat counts;
ratios inside one run are what to compare on a shared machine. Quality: each runtime's vectors
against torch's (max |Δ|, row cosine mean / min).

    python bench/pins_embed.py                                   # 5,000 Home Depot pins, 2 threads
    python bench/pins_embed.py --n 0 --repeats 1                 # all 54,667
    python bench/pins_embed.py --pins P.parquet --n 40 --repeats 1 --base-model DIR --work W --out-dir O  # tests

Writes ``<out-dir>/<name>.json`` and ``<out-dir>/<name>.md`` (``--name``, default ``pins_embed``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

# Idle OpenMP threads must not spin: torch and onnxruntime take turns in one process.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

RUNTIMES = ("torch", "onnx-fp32", "onnx-int8")


def make_dataset(pins: Path, work: Path, n: int, seed: int) -> tuple[Path, list[str]]:
    """Copy ``n`` pins (seeded sample; 0 = all) of ``pins`` (``pin_id``, ``text`` only) to ``work/ds``."""
    from encoders.data.schema import write_table

    table = pq.read_table(pins, columns=["pin_id", "text"])
    if 0 < n < table.num_rows:
        rows = np.sort(np.random.default_rng(seed).choice(table.num_rows, n, replace=False))
        table = table.take(pa.array(rows))
    ds = work / "ds"
    ds.mkdir(parents=True, exist_ok=True)
    for stale in ("pins.parquet", "pin_tower.json"):
        (ds / stale).unlink(missing_ok=True)
    write_table(table, ds / "pins.parquet", "pins")
    return ds, table.column("text").to_pylist()


def token_stats(base_model: Path, texts: list[str], max_length: int) -> dict[str, float]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(base_model / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    lengths = np.array([len(e.ids) for e in tok.encode_batch(texts)])
    return {"mean": float(lengths.mean()), "p50": float(np.median(lengths)), "max": int(lengths.max()),
            "total": int(lengths.sum())}


def run(args: argparse.Namespace) -> dict:
    from encoders.data.pin_embeddings import embed_pins, read_pin_embeddings
    from encoders.export.parity import row_cosine
    from encoders.model.base_model import resolve_base_model

    model = resolve_base_model(args.base_model)
    ds, texts = make_dataset(args.pins, args.work, args.n, args.seed)
    cache = args.work / "onnx_cache"
    common = {"threads": args.threads, "progress": False, "onnx_cache": cache, "max_length": args.max_length}

    t0 = time.perf_counter()  # the one-off export (a cold cache), untimed below
    embed_pins(ds, model, force=True, runtime="onnx-fp32", **common)
    first = json.loads((ds / "pin_tower.json").read_text())
    export_wall = time.perf_counter() - t0
    runtimes = [r for r in RUNTIMES if r in args.runtimes]
    pps: dict[str, list[float]] = {r: [] for r in runtimes}
    wall: dict[str, list[float]] = {r: [] for r in runtimes}
    vectors: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for r in runtimes:
            t = time.perf_counter()
            embed_pins(ds, model, force=True, runtime=r, **common)
            wall[r].append(time.perf_counter() - t)
            info[r] = json.loads((ds / "pin_tower.json").read_text())
            pps[r].append(len(texts) / max(info[r]["seconds"], 1e-9))
            vectors[r] = read_pin_embeddings(ds)[1]
    load_after = os.getloadavg()
    ref = vectors.get("torch")
    results = {}
    for r in runtimes:
        q: dict[str, float] = {}
        if ref is not None:
            cos = row_cosine(vectors[r], ref)
            q = {"max_abs_vs_torch": float(np.abs(vectors[r] - ref).max()), "cos_mean_vs_torch": float(cos.mean()),
                 "cos_min_vs_torch": float(cos.min())}
        results[r] = {"pins_per_s": max(pps[r]), "pins_per_s_median": statistics.median(pps[r]),
                      "pins_per_s_all": pps[r], "wall_s_best": min(wall[r]), "encode_s_best": len(texts) / max(pps[r]),
                      **q, "onnx_model_version": (info[r].get("onnx") or {}).get("model_version")}
    base = results.get("torch", {}).get("pins_per_s")
    for r in runtimes:
        results[r]["x_torch"] = results[r]["pins_per_s"] / base if base else None
    onnx = first.get("onnx") or {}
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in sys.argv),
        "pins_source": str(args.pins), "n_pins": len(texts), "threads": args.threads, "repeats": args.repeats,
        "max_length": args.max_length, "base_model": model.parent.name if model.name == "model" else model.name,
        "tokens": token_stats(model, texts, args.max_length),
        "export": {"wall_s": export_wall, "first_encode_s": first["seconds"], "setup_s": export_wall - first["seconds"],
                   "exported": onnx.get("exported"), "fp32_max_abs_diff": onnx.get(
            "fp32_max_abs_diff"), "int8_cos_mean": onnx.get("int8_cos_mean"), "int8_cos_min": onnx.get("int8_cos_min")},
        "int8_sample": (info.get("onnx-int8", {}).get("onnx") or {}).get("int8_sample"),
        "runtimes": results,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_before": load_before,
                    "loadavg_after": load_after},
    }


def to_markdown(res: dict) -> str:
    tok, ex, m = res["tokens"], res["export"], res["machine"]
    lines = [
        f"`searchsage pins embed` throughput, {res['base_model']} (mean pooling + L2, max_length {res['max_length']}), "
        f"{res['n_pins']:,} pins of {res['pins_source']} ({tok['mean']:.1f} tokens/pin mean, max {tok['max']}), "
        f"{res['threads']} threads, best of {res['repeats']} interleaved repeat(s); load avg "
        f"{m['loadavg_before'][0]:.1f} → {m['loadavg_after'][0]:.1f} on {m['cpus']} CPUs.",
        "",
        f"Command: `{res['command']}`",
        "",
        "| runtime | pins/s (best) | pins/s (median) | × torch | encode s | wall s per call | max abs vs torch | "
        "cos mean / min vs torch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r, v in res["runtimes"].items():
        q = (f"{v['max_abs_vs_torch']:.2g} | {v['cos_mean_vs_torch']:.6f} / {v['cos_min_vs_torch']:.6f}"
             if "max_abs_vs_torch" in v else "– | –")
        x = f"{v['x_torch']:.2f}" if v["x_torch"] else "–"
        lines.append(f"| {r} | {v['pins_per_s']:.0f} | {v['pins_per_s_median']:.0f} | {x} | {v['encode_s_best']:.1f} | "
                     f"{v['wall_s_best']:.1f} | {q} |")
    lines += ["", f"One-off ONNX export (cold cache: model load, torch export, fusion, int8, parity, parquet write): "
              f"{ex['setup_s']:.1f} s (the first onnx-fp32 call took {ex['wall_s']:.1f} s wall, of which "
              f"{ex['first_encode_s']:.1f} s encoding). Export parity: fp32 max |onnx − torch| "
              f"{ex['fp32_max_abs_diff']:.2g}, int8 cosine to fp32 mean {ex['int8_cos_mean']:.4f} / min "
              f"{ex['int8_cos_min']:.4f}."]
    if res.get("int8_sample"):
        s = res["int8_sample"]
        lines.append(f"int8 gate on {s['n']} of these pins: cosine to fp32 mean {s['cos_mean']:.4f} / min "
                     f"{s['cos_min']:.4f}.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pins", type=Path, default=Path("runs/homedepot/pins.parquet"), help="source pins.parquet (read)")
    p.add_argument("--n", type=int, default=5000, help="pins sampled from it (seeded; 0 = all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, default=Path("runs/pe_bench"), help="working copy + ONNX cache")
    p.add_argument("--base-model", default=None, help="local transformers directory (default: the packaged MiniLM)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--runtimes", default=",".join(RUNTIMES), help="comma-separated subset of " + ",".join(RUNTIMES))
    p.add_argument("--out-dir", type=Path, default=Path("bench/results"))
    p.add_argument("--name", default="pins_embed", help="output file stem (default pins_embed)")
    args = p.parse_args(argv)
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    res = run(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / f"{args.name}.json").write_text(json.dumps(res, indent=2) + "\n")
    md = to_markdown(res)
    (args.out_dir / f"{args.name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
