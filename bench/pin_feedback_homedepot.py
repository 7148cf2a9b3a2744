"""Pin-space pseudo-relevance feedback (:class:`encoders.runtime.pin_feedback.PinFeedback`) on Home Depot.

For each run directory (and the zero-shot base model with ``--zero-shot``), encodes the split's
queries once, then scores Recall@10/@100 without feedback and for every ``(k, weight)`` of the grid
(the same protocol as ``bench/train_homedepot.py``: exact search over every distinct product), with
the paired-bootstrap 95% interval of the Recall@10 change that the feedback makes.
Choose ``k``/``weight`` with ``--split validation`` on runs trained with ``--hold-out-validation``;
report them with ``--split eval`` and a fixed ``--grid``.

Usage::

    python bench/pin_feedback_homedepot.py --split validation --runs runs/exp/hov0 --grid 5,10,20,40x0.1,0.2,0.3,0.5
    python bench/pin_feedback_homedepot.py --split eval --runs runs/exp/s0 runs/exp/s1 --zero-shot

Appends one JSON line per (system, setting) to ``bench/results/pin_feedback_homedepot.jsonl`` and
prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from train_homedepot import _commit, eval_pairs

from encoders.eval.bootstrap import paired_bootstrap_diff
from encoders.eval.retrieval import pair_hit_rank, per_query_hits, recall_at_k
from encoders.runtime.pin_feedback import PinFeedback
from encoders.runtime.vectors import exact_top_k

RESULTS = Path(__file__).parent / "results" / "pin_feedback_homedepot.jsonl"


def parse_grid(text: str) -> list[tuple[int, float]]:
    """``"5,10x0.1,0.2"`` → ``[(5, 0.1), (5, 0.2), (10, 0.1), (10, 0.2)]``."""
    ks, _, ws = text.partition("x")
    if not ws:
        raise argparse.ArgumentTypeError(f"expected K[,K...]xWEIGHT[,WEIGHT...], got {text!r}")
    return [(int(k), float(w)) for k in ks.split(",") for w in ws.split(",")]


def recall(q: np.ndarray, pins: np.ndarray, pair_query: np.ndarray, pair_pin: np.ndarray
           ) -> tuple[dict[str, float], tuple[np.ndarray, np.ndarray]]:
    """``({"recall@10", "recall@100"}, per-query (hits@10 (Q,), pairs (Q,)))`` of query vectors ``q (Q, D)``."""
    ids, _ = exact_top_k(q, pins, 100)
    rank = pair_hit_rank(ids, pair_query, pair_pin)
    r = recall_at_k(rank, [10, 100])
    return {"recall@10": r[10], "recall@100": r[100]}, per_query_hits(rank, pair_query, len(q), 10)


def encode(system: str, queries: list[str]) -> np.ndarray:
    """``(Q, D)`` query embeddings of a run directory, or of the zero-shot base model (``"zero-shot"``)."""
    from encoders.eval.baselines import zero_shot_tower
    from encoders.model.base_model import resolve_base_model
    from encoders.model.tower import QueryTower, encode_texts, load_tokenizer

    tower = zero_shot_tower(resolve_base_model(None)) if system == "zero-shot" else QueryTower.load(system)
    return encode_texts(tower, load_tokenizer(tower.config.base_model), queries, tower.config.max_length).numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("runs/homedepot"))
    ap.add_argument("--split", choices=("eval", "validation"), default="eval")
    ap.add_argument("--runs", nargs="*", default=[], help="run directories of `searchsage train`")
    ap.add_argument("--zero-shot", action="store_true", help="also the zero-shot base model")
    ap.add_argument("--grid", type=parse_grid, default=parse_grid("5x0.1"), help="KxWEIGHT grid (default 5x0.1)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    queries, pair_query, pair_pin, pins = eval_pairs(args.data, args.split)
    systems = [*args.runs, *(["zero-shot"] if args.zero_shot else [])]
    commit = _commit()
    lines = ["| system | k | weight | Recall@10 | Recall@100 | Δ Recall@10 (95% CI) |", "|---|---|---|---|---|---|"]
    with RESULTS.open("a") as log:
        for system in systems:
            q = encode(system, queries)
            plain = None
            for k, w in [(0, 0.0), *args.grid]:
                fb_q = PinFeedback(k=max(k, 1), weight=w).apply(q, pins)
                r, (hits, den) = recall(fb_q, pins, pair_query, pair_pin)
                rec = {"system": system, "split": args.split, "k": k, "weight": w, "commit": commit, **r,
                       "queries": len(queries), "pairs": len(pair_pin)}
                delta = ""
                if plain is None:
                    plain = hits
                else:
                    ci = paired_bootstrap_diff(hits, plain, den)
                    rec["delta@10"] = {"diff": ci.diff, "low": ci.low, "high": ci.high}
                    delta = f"{ci.diff:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}]"
                log.write(json.dumps(rec) + "\n")
                lines.append(f"| {system} | {k or '-'} | {w:g} | {r['recall@10']:.4f} | {r['recall@100']:.4f} | {delta} |")
                print(lines[-1], flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
