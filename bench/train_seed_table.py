"""Seed-level table of Home Depot training variants from ``bench/results/train_homedepot.jsonl``.

Runs are named ``{prefix}-{variant}-s{seed}-{split}`` (``bench/train_homedepot.py --name``). For
each variant and split: Recall@10 per seed, its mean and sample standard deviation, and — against
the reference variant — the mean of the per-seed differences with a 95% t-interval over the seeds
that both have (training randomness, which a query bootstrap of one run does not see). Prints a
Markdown table.

Usage::

    .venv/bin/python bench/train_seed_table.py --prefix exp19 --variants base,k4096,k4096logq \\
        --reference base [--metric recall@10] [--results bench/results/train_homedepot.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from scipy import stats

ROOT = Path(__file__).resolve().parents[1]
NAME = re.compile(r"^(?P<prefix>.+?)-(?P<variant>[A-Za-z0-9_]+)-s(?P<seed>\d+)-(?P<split>val|eval)$")


@dataclass
class Row:
    """One variant on one split: ``values`` per seed, and the paired difference to the reference."""

    variant: str
    split: str
    values: dict[int, float]
    delta: tuple[float, float, float] | None = None  # mean, low, high over common seeds
    delta_seeds: int = 0

    @property
    def mean(self) -> float:
        return sum(self.values.values()) / len(self.values)

    @property
    def sd(self) -> float:
        v = list(self.values.values())
        if len(v) < 2:
            return float("nan")
        m = sum(v) / len(v)
        return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def collect(records: Iterable[dict], prefix: str, metric: str) -> dict[tuple[str, str], dict[int, float]]:
    """``{(variant, split): {seed: value}}`` of the runs named ``{prefix}-{variant}-s{seed}-{split}``
    (the last record of a name wins, as a re-run replaces the earlier one)."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    for rec in records:
        m = NAME.match(str(rec.get("name", "")))
        if not m or m["prefix"] != prefix or metric not in rec:
            continue
        out.setdefault((m["variant"], m["split"]), {})[int(m["seed"])] = float(rec[metric])
    return out


def paired_delta(run: dict[int, float], ref: dict[int, float], level: float = 0.95) -> tuple[tuple[float, float, float], int] | None:
    """Mean per-seed difference ``run - ref`` over their common seeds with a ``level`` t-interval."""
    seeds = sorted(set(run) & set(ref))
    if len(seeds) < 2:
        return None
    d = [run[s] - ref[s] for s in seeds]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1)) * sd / math.sqrt(len(d))
    return (mean, mean - half, mean + half), len(d)


def build_rows(table: dict[tuple[str, str], dict[int, float]], variants: Sequence[str], reference: str) -> list[Row]:
    """Rows for ``variants`` (in order) on the ``val`` and ``eval`` splits; a missing variant is an error."""
    rows = []
    for split in ("val", "eval"):
        for v in variants:
            if (v, split) not in table:
                known = sorted({k[0] for k in table})
                raise ValueError(f"no runs of variant {v!r} on split {split!r}; known variants: {known}")
            row = Row(v, split, dict(sorted(table[(v, split)].items())))
            if v != reference and (reference, split) in table:
                got = paired_delta(row.values, table[(reference, split)])
                if got is not None:
                    row.delta, row.delta_seeds = got
            rows.append(row)
    return rows


def to_markdown(rows: Sequence[Row], metric: str, reference: str) -> str:
    lines = [f"| variant | split | {metric} per seed | mean ± sd | Δ vs {reference} (mean of seed differences, 95% t) |",
             "|---|---|---|---|---|"]
    for r in rows:
        per_seed = ", ".join(f"s{s} {v:.4f}" for s, v in r.values.items())
        delta = "–" if r.delta is None else (f"{r.delta[0]:+.4f} [{r.delta[1]:+.4f}, {r.delta[2]:+.4f}] "
                                              f"({r.delta_seeds} seeds)")
        lines.append(f"| {r.variant} | {r.split} | {per_seed} | {r.mean:.4f} ± {r.sd:.4f} | {delta} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--results", type=Path, default=ROOT / "bench" / "results" / "train_homedepot.jsonl")
    p.add_argument("--prefix", required=True, help="run name prefix, e.g. exp19")
    p.add_argument("--variants", required=True, help="comma-separated variants, e.g. base,k4096")
    p.add_argument("--reference", required=True, help="variant the differences are taken against")
    p.add_argument("--metric", default="recall@10", help="field of the records (default recall@10)")
    args = p.parse_args(argv)
    if not args.results.is_file():
        p.error(f"{args.results} not found")
    records = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
    variants = [v for v in args.variants.split(",") if v]
    try:
        rows = build_rows(collect(records, args.prefix, args.metric), variants, args.reference)
    except ValueError as exc:
        p.error(str(exc))
    md = to_markdown(rows, args.metric, args.reference)
    print(md)
    return md


if __name__ == "__main__":
    main()
