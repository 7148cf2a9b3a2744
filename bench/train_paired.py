"""Paired query-bootstrap Δ Recall@10/@100 of Home Depot training runs against a reference run.

Each run directory (a saved :class:`~encoders.model.tower.QueryTower`, e.g. ``runs/exp19/base-s0``)
encodes the queries of one split (``bench/train_homedepot.py``'s protocol: ``eval`` or
``validation``, every pin of ``pins.parquet`` in the index, exact top-100 search). Per query, the
engaged pairs found in the top ``k`` and the pairs in all are the bootstrap units
(:func:`encoders.eval.retrieval.per_query_hits`); Δ = run − reference is the paired bootstrap over
queries of :func:`encoders.eval.bootstrap.paired_bootstrap_diff` (2,000 replicates, seed 0), with
its 95% CI. Prints one JSON line per run other than the reference::

    {"split", "ref", "run", "recall@10", "ref_recall@10", "delta@10": [Δ, low, high],
     "recall@100", "ref_recall@100", "delta@100": [Δ, low, high]}     (4 decimals)

Usage::

    .venv/bin/python bench/train_paired.py [--data runs/homedepot] [--split eval|validation] REF RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# bench/abtest.py would shadow the abtest package when run as a script from this folder
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from encoders.eval.bootstrap import paired_bootstrap_diff  # noqa: E402
from encoders.eval.retrieval import pair_hit_rank, per_query_hits  # noqa: E402
from encoders.runtime.vectors import exact_top_k  # noqa: E402

KS = (10, 100)
REPS = 2000
SEED = 0

# per run: {k: (hits@k per query (Q,), pairs per query (Q,))}
Hits = Mapping[int, tuple[np.ndarray, np.ndarray]]


def run_hits(query_emb: np.ndarray, pin_emb: np.ndarray, pair_query: np.ndarray, pair_pin: np.ndarray,
             ks: Sequence[int] = KS) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per-query ``(hits@k, pairs)`` of one run's query embeddings ``(Q, D)`` for each ``k`` in ``ks``
    (exact top-``max(ks)`` search of ``pin_emb (N, D)``; pair ``i`` is query row ``pair_query[i]``
    and pin row ``pair_pin[i]``)."""
    ids, _ = exact_top_k(query_emb, pin_emb, max(ks))
    rank = pair_hit_rank(ids, pair_query, pair_pin)
    return {k: per_query_hits(rank, pair_query, len(query_emb), k) for k in ks}


def paired_records(hits: Mapping[str, Hits], ref: str, runs: Sequence[str], split: str,
                   ks: Sequence[int] = KS, reps: int = REPS, seed: int = SEED) -> list[dict[str, object]]:
    """One record per run in ``runs`` (the reference itself included if listed): its Recall@k, the
    reference's, and ``[Δ, low, high]`` of the paired bootstrap of run − reference, rounded to 4
    decimals. ``hits[name]`` is :func:`run_hits` of that run; a name without hits is a ``ValueError``."""
    missing = [name for name in (ref, *runs) if name not in hits]
    if missing:
        raise ValueError(f"no hits for run(s) {', '.join(map(repr, missing))}; "
                         f"known: {', '.join(map(repr, hits)) or 'none'}")
    out: list[dict[str, object]] = []
    for run in runs:
        rec: dict[str, object] = {"split": split, "ref": ref, "run": run}
        for k in ks:
            (ha, den), (hb, _) = hits[run][k], hits[ref][k]
            ci = paired_bootstrap_diff(ha, hb, den, reps=reps, seed=seed)
            rec[f"recall@{k}"] = round(float(ha.sum() / den.sum()), 4)
            rec[f"ref_recall@{k}"] = round(float(hb.sum() / den.sum()), 4)
            rec[f"delta@{k}"] = [round(float(x), 4) for x in (ci.diff, ci.low, ci.high)]
        out.append(rec)
    return out


def tower_hits(run: str, queries: list[str], pair_query: np.ndarray, pair_pin: np.ndarray,
               pin_emb: np.ndarray, ks: Sequence[int] = KS) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """:func:`run_hits` of the query tower saved in the run directory ``run``."""
    from encoders.model.tower import QueryTower, encode_texts, load_tokenizer

    tower = QueryTower.load(run)
    q = encode_texts(tower, load_tokenizer(tower.config.base_model), queries, tower.config.max_length).numpy()
    return run_hits(q, pin_emb, pair_query, pair_pin, ks)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("runs/homedepot"),
                    help="the Home Depot dataset directory (default: runs/homedepot)")
    ap.add_argument("--split", choices=("eval", "validation"), default="eval",
                    help="score the eval split (default) or the validation split (runs trained with "
                         "--hold-out-validation)")
    ap.add_argument("--reps", type=int, default=REPS, help=f"bootstrap replicates (default {REPS})")
    ap.add_argument("--seed", type=int, default=SEED, help=f"bootstrap seed (default {SEED})")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for encoding (default 1)")
    ap.add_argument("ref", help="the reference run directory")
    ap.add_argument("runs", nargs="+", help="run directories compared with REF")
    args = ap.parse_args(argv)
    for run in (args.ref, *args.runs):
        if not (Path(run) / "tower_config.json").is_file():
            ap.error(f"run {run}: no tower_config.json (not a saved query tower's run directory)")
    if not args.data.is_dir():
        ap.error(f"--data {args.data}: not a directory")
    if args.reps < 1:
        ap.error(f"--reps must be >= 1, got {args.reps}")

    import torch

    from bench.train_homedepot import eval_pairs

    torch.set_num_threads(args.threads)
    queries, pair_query, pair_pin, pin_emb = eval_pairs(args.data, args.split)
    hits = {run: tower_hits(run, queries, pair_query, pair_pin, pin_emb) for run in (args.ref, *args.runs)}
    for rec in paired_records(hits, args.ref, args.runs, args.split, reps=args.reps, seed=args.seed):
        print(json.dumps(rec))
    return 0


if __name__ == "__main__":
    sys.exit(main())
