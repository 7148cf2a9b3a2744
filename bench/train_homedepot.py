"""Train a query tower on the Home Depot dataset and measure Recall@10/@100 (the DESIGN protocol).

Protocol: eval queries are those with ``is_eval_query``; positives are the eval queries'
engagements (relevance >= 2.67); the index is every distinct product (all rows of pins.parquet);
exact dot-product search of L2-normalised query embeddings against the frozen pin embeddings.

Usage::

    python bench/train_homedepot.py --name NAME [--data runs/homedepot] -- <searchsage train args>
    python bench/train_homedepot.py --name zero-shot --eval-only RUN_DIR   # evaluate an existing run
    python bench/train_homedepot.py --name N --split validation --eval-only RUN_DIR   # validation split

Appends one JSON line per run to ``bench/results/train_homedepot.jsonl``
(name, command, wall time, steps, Recall@10/@100).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from encoders.data.schema import DatasetPaths, pin_embedding_matrix, read_table
from encoders.data.split import is_eval_query, is_validation_query
from encoders.eval.retrieval import pair_hit_rank, recall_at_k
from encoders.runtime.vectors import exact_top_k

RESULTS = Path(__file__).parent / "results" / "train_homedepot.jsonl"


def eval_pairs(data: Path, split: str = "eval") -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """``(queries, pair_query (P,), pair_pin (P,), pin_emb (N, D))`` for the ``"eval"`` split or the
    ``"validation"`` split (held out of training only by ``--hold-out-validation``)."""
    in_split = {"eval": is_eval_query, "validation": is_validation_query}[split]
    paths = DatasetPaths(data)
    pins = read_table(paths.pins, "pins")
    index = {p: i for i, p in enumerate(pins.column("pin_id").to_pylist())}
    eng = read_table(paths.engagements, "engagements")
    pairs = sorted({(q, p) for q, p in zip(eng.column("query").to_pylist(), eng.column("pin_id").to_pylist(),
                                           strict=True) if in_split(q)})
    queries = sorted({q for q, _ in pairs})
    qi = {q: i for i, q in enumerate(queries)}
    return (queries, np.array([qi[q] for q, _ in pairs]), np.array([index[p] for _, p in pairs]),
            pin_embedding_matrix(pins))


def tower_recall(tower, queries: list[str], pair_query: np.ndarray, pair_pin: np.ndarray,
                 pin_emb: np.ndarray) -> dict[str, float]:
    """Recall@10/@100 of a :class:`~encoders.model.tower.QueryTower` on the eval pairs (exact search)."""
    from encoders.model.tower import encode_texts, load_tokenizer

    q = encode_texts(tower, load_tokenizer(tower.config.base_model), queries, tower.config.max_length).numpy()
    ids, _ = exact_top_k(q, pin_emb, 100)
    r = recall_at_k(pair_hit_rank(ids, pair_query, pair_pin), [10, 100])
    return {"recall@10": r[10], "recall@100": r[100]}


def evaluate_run(run: Path, data: Path, threads: int = 2, split: str = "eval") -> dict[str, float]:
    import torch

    from encoders.model.tower import QueryTower

    torch.set_num_threads(threads)
    queries, pq_, pp, pin_emb = eval_pairs(data, split)
    rec = tower_recall(QueryTower.load(run), queries, pq_, pp, pin_emb)
    if split == "eval":  # the keys of the earlier log lines
        return {**rec, "eval_queries": len(queries), "eval_pairs": len(pp)}
    return {**rec, "split": split, "queries": len(queries), "pairs": len(pp)}


def _commit() -> str | None:
    """The code version a result was measured with (``+dirty`` when tracked files other than the
    results in ``bench/results/`` were modified)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results"], capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", required=True)
    ap.add_argument("--data", default="runs/homedepot")
    ap.add_argument("--eval-only", default=None, help="evaluate this run directory, do not train")
    ap.add_argument("--split", choices=("eval", "validation"), default="eval",
                    help="score on the eval split (default) or the validation split (train with --hold-out-validation)")
    ap.add_argument("train_args", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    data = Path(args.data)
    train_args = [a for a in args.train_args if a != "--"]
    rec: dict[str, object] = {"name": args.name, "commit": _commit()}
    if args.eval_only:
        run = Path(args.eval_only)
    else:
        from encoders.cli import train_commands

        cmd = ["train", "--data", str(data), *train_args]
        rec["command"] = "searchsage " + " ".join(cmd)
        parser = argparse.ArgumentParser(prog="searchsage")
        train_commands.register(parser.add_subparsers())
        t0 = time.perf_counter()
        ns = parser.parse_args(cmd)
        rc = ns.func(ns)
        if rc:
            return rc
        rec["wall_s"] = round(time.perf_counter() - t0, 1)
        run = Path(train_args[train_args.index("--out") + 1])
        summary = json.loads((run / "train_summary.json").read_text())
        loss = summary["final_loss"]
        rec.update(steps=summary["steps"], epochs=summary["epochs"], train_wall_time_s=summary["wall_time_s"],
                   final_loss=None if loss != loss else loss, temperature=summary["temperature"])
    rec.update(evaluate_run(run, data, split=args.split))
    print(json.dumps(rec))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as f:
        f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
