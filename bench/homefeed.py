"""Homefeed benchmark: generate (if needed), train the full user tower and its ablations, evaluate all.

Trains the full tower, the variant without ID embeddings and the variant without feature crossing
(same data, split, seed and budget), evaluates them against the mean-of-recent-pins and popularity
baselines on the full index and on the time-decayed / all-time top-N corpora, and writes
``bench/results/homefeed.json`` + ``.md`` (the evaluation report plus timings and the commands).
The steps are those of ``searchsage homefeed generate|train --ablations|evaluate``, called in-process.

    .venv/bin/python bench/homefeed.py --data runs/homefeed_data --run runs/homefeed_run --epochs 3 --threads 2
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from encoders.homefeed.ablations import train_with_ablations
from encoders.homefeed.config import HomefeedEvalConfig, HomefeedTrainConfig
from encoders.homefeed.evaluate import evaluate_homefeed
from encoders.homefeed.report import render_markdown, write_report
from encoders.homefeed.synthetic import HomefeedSynthConfig, write_synthetic_homefeed

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="runs/homefeed_data", help="dataset directory (generated when missing)")
    p.add_argument("--run", default="runs/homefeed_run", help="run directory (ablations in RUN/ablations/)")
    p.add_argument("--pin-embeddings", choices=["minilm", "structured"], default="minilm")
    p.add_argument("--users", type=int, default=4000)
    p.add_argument("--pins", type=int, default=6000)
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--max-minutes", type=float, default=None, help="time budget per variant")
    p.add_argument("--history", type=int, default=HomefeedTrainConfig.history, help="recent events per user")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-train", action="store_true", help="evaluate an existing run")
    p.add_argument("--name", default="homefeed", help="results file stem (bench/results/NAME.json/.md)")
    args = p.parse_args()

    timings: dict[str, float] = {}
    commands = []
    if not (Path(args.data) / "events.parquet").exists():
        t0 = time.perf_counter()
        write_synthetic_homefeed(args.data, HomefeedSynthConfig(
            n_users=args.users, n_pins=args.pins, pin_embeddings=args.pin_embeddings,
            seed=args.seed, threads=args.threads))
        timings["generate_s"] = round(time.perf_counter() - t0, 1)
    commands.append(f"searchsage homefeed generate --out {args.data} --n-users {args.users} --n-pins {args.pins} "
                    f"--pin-embeddings {args.pin_embeddings} --seed {args.seed}")
    budget = f" --max-minutes {args.max_minutes:g}" if args.max_minutes else ""
    commands.append(f"searchsage homefeed train --data {args.data} --out {args.run} --ablations --epochs "
                    f"{args.epochs:g}{budget} --history {args.history} --threads {args.threads} --seed {args.seed}")
    trained = {}
    if not args.skip_train:
        config = HomefeedTrainConfig(data=args.data, out=args.run, epochs=args.epochs, max_minutes=args.max_minutes,
                                     history=args.history, threads=args.threads, seed=args.seed)
        t0 = time.perf_counter()
        results = train_with_ablations(config)
        timings["train_all_s"] = round(time.perf_counter() - t0, 1)
        trained = {name: {"steps": r.steps, "epochs": round(r.epochs, 3), "wall_time_s": round(r.wall_time_s, 1),
                          "final_loss": round(r.final_loss, 4), "stopped_by": r.stopped_by}
                   for name, r in results.items()}
    out = Path(args.run) / "eval"
    commands.append(f"searchsage homefeed evaluate --data {args.data} --run {args.run} --out {out} "
                    f"--threads {args.threads}")
    t0 = time.perf_counter()
    report = evaluate_homefeed(HomefeedEvalConfig(data=args.data, run=args.run, out=str(out), threads=args.threads))
    timings["evaluate_s"] = round(time.perf_counter() - t0, 1)
    write_report(report, out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"commands": commands, "timings": timings, "training": trained, "machine": platform.machine(),
              "report": json.loads((out / "eval_report.json").read_text())}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(record, indent=2))
    md = ["# Homefeed benchmark", "", "```bash", *commands, "```", "",
          "Timings: " + ", ".join(f"{k} {v:g}" for k, v in timings.items()), ""]
    if trained:
        md += ["| run | steps | epochs | train s | final loss | stopped by |", "|---|---:|---:|---:|---:|---|"]
        md += [f"| {n} | {t['steps']} | {t['epochs']} | {t['wall_time_s']} | {t['final_loss']} | {t['stopped_by']} |"
               for n, t in trained.items()]
        md.append("")
    (RESULTS / f"{args.name}.md").write_text("\n".join(md) + "\n" + render_markdown(record["report"]))
    print((RESULTS / f"{args.name}.md").read_text())


if __name__ == "__main__":
    main()
