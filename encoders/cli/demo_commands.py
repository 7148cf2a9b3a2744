"""``searchsage demo``: synthetic (or your) data → train → evaluate → ONNX → Feast/Redis → rank → A/B."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo",
        help="run the whole system end to end (about 10 minutes on 2 CPU cores)",
        description="Synthetic data (or --data) → frozen pin embeddings → train the query tower "
        "(time-bounded) → evaluation vs BM25 and zero-shot → ONNX bundles → feast apply + "
        "materialize into Redis (a local redis-server is started if none answers; Feast's SQLite "
        "online store if Redis is not installed) → a ranker query → a simulated A/B test and its "
        "analysis; homefeed retrieval at small size over the same pins (synthetic users → user tower + ablations "
        "→ Recall@k with paired CIs → ONNX → the user_embedding view → rank --user). Safe to re-run: finished "
        "steps are reused.",
    )
    p.add_argument("--workdir", type=Path, default=Path("runs/demo"), help="where everything is written (default runs/demo)")
    p.add_argument("--data", type=Path, default=None,
                   help="your data: a Home Depot-style CSV (search_term, product_uid, product_title, relevance) "
                   "or a dataset directory (pins/engagements/judgments parquet); default: synthetic")
    p.add_argument("--base-model", default=None, help="local transformers directory (default: packaged all-MiniLM-L6-v2)")
    p.add_argument("--train-minutes", type=float, default=3.0, help="training time budget in minutes (default 3)")
    p.add_argument("--users", type=int, default=20_000, help="simulated A/B users (default 20000)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for torch/onnxruntime (default 2)")
    p.add_argument("--query", default=None, help="query for the ranker example (default: a held-out head query)")
    p.add_argument("--retrain", action="store_true", help="train again even if the work dir has a finished run")
    p.add_argument("--small", action="store_true", help="tiny sizes (500 pins, a few steps) for smoke tests")
    p.add_argument("--no-homefeed", dest="homefeed", action="store_false",
                   help="leave out the homefeed part (it runs only over the synthetic catalogue: not with --data CSV)")
    p.add_argument("--dashboard", action="store_true", help="open the Streamlit dashboard when done")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from encoders.cli.main import main
    from encoders.cli_support import CLIError
    from encoders.demo.plan import DemoConfig
    from encoders.demo.runner import DemoStepFailed, run_demo
    from encoders.redis_records.connection import RedisUnavailable

    if args.data is not None and not args.data.exists():
        raise CLIError(f"--data {args.data} does not exist (expected a CSV file or a dataset directory)")
    cfg = DemoConfig(
        workdir=args.workdir.resolve(), data=args.data.resolve() if args.data else None, base_model=args.base_model,
        train_minutes=args.train_minutes, small=args.small, users=args.users, threads=args.threads,
        query_for_rank=args.query, retrain=args.retrain, homefeed=args.homefeed,
    )
    try:
        summary = run_demo(cfg, searchsage=main)  # each step: the argv it prints, in-process
    except (DemoStepFailed, RedisUnavailable) as exc:
        raise CLIError(str(exc)) from None
    if args.dashboard:
        import os

        cmd = [sys.executable, "-m", "encoders.cli.main", "dashboard", "--results", str(summary["results"]),
               "--bundle", str(summary["bundle"]), "--repo", str(summary["feature_repo"]),
               "--pins", str(Path(str(summary["dataset"])) / "pins.parquet")]
        homefeed = summary.get("homefeed")
        if isinstance(homefeed, dict) and homefeed.get("eval_report"):
            cmd += ["--homefeed", str(Path(homefeed["eval_report"]).parent)]
        env = dict(os.environ)
        if summary.get("redis"):
            env["SEARCHSAGE_REDIS"] = str(summary["redis"])
        return subprocess.call(cmd, env=env)
    return 0
