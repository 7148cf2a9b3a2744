"""Scale check of the user tower: a 1M-row user ID table trains a few steps and embeds every user.

Writes ``bench/results/homefeed_scale.json`` + ``.md`` (timings, table size, RSS after each phase,
peak RSS). See :func:`encoders.homefeed.scale.scale_check`.

    .venv/bin/python bench/homefeed_scale.py --users 1000000 --steps 20 --threads 2
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from encoders.homefeed.scale import scale_check

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=512)
    p.add_argument("--pins", type=int, default=20_000)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--embed-batch", type=int, default=4096)
    p.add_argument("--name", default="homefeed_scale")
    args = p.parse_args()
    report = scale_check(args.users, args.steps, args.batch_size, args.pins, args.dim, args.threads, args.embed_batch)
    command = (f".venv/bin/python bench/homefeed_scale.py --users {args.users} --steps {args.steps} "
               f"--batch-size {args.batch_size} --pins {args.pins} --dim {args.dim} --threads {args.threads} "
               f"--embed-batch {args.embed_batch}")
    report["command"] = command
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=2))
    rss = report["rss_mb"]
    md = ["# Homefeed scale check", "", "```bash", command, "```", "",
          "| | value |", "|---|---:|",
          f"| users (ID table rows) | {report['n_users']:,} ({report['user_table_rows']:,} rows, "
          f"{report['user_table_mb']} MB fp32) |",
          f"| events | {report['events']:,} |",
          f"| train | {report['steps']} steps, {report['seconds_per_step']} s/step |",
          f"| embed all users | {report['seconds']['embed_all']} s wall, {report['cpu_seconds_embed_all']} s CPU "
          f"({report['users_per_s']:,} users/s wall) |",
          f"| embeddings | {report['embeddings']['shape']} {report['embeddings']['dtype']}, finite "
          f"{report['embeddings']['finite']} |",
          f"| RSS (MB) start / data / trained / embedded | {rss['start']} / {rss['data']} / {rss['trained']} / "
          f"{rss['embedded']} |",
          f"| peak RSS (MB) | {report['peak_rss_mb']} |", ""]
    (RESULTS / f"{args.name}.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
