"""BM25 with RM3 (classic lexical pseudo-relevance feedback) on Home Depot: a fairness check.

Pin-space feedback lifts the tower (``bench/pin_feedback_homedepot.py``). This asks whether the
best baseline gains as much from *its* classic feedback, which would move the 1.15× target. RM3,
per query: take the top ``docs`` BM25 titles, weight each title term by Σ_d score_d/Σscore ·
tf(t, d)/|d|, keep the top ``terms``, and rank by ``lam · BM25(q)/max + (1 − lam) · Σ_t w_t ·
BM25(t)/max``. Same protocol as ``bench/train_homedepot.py`` (exact, every distinct product).

Usage::

    python bench/bm25_rm3_homedepot.py [--split eval|validation]

Appends one JSON line per setting to ``bench/results/bm25_rm3_homedepot.jsonl``.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import numpy as np
from train_homedepot import _commit, eval_pairs

from encoders.data.schema import DatasetPaths, read_table
from encoders.eval.baselines import BM25_STOPWORDS
from encoders.eval.retrieval import pair_hit_rank, recall_at_k

RESULTS = Path(__file__).parent / "results" / "bm25_rm3_homedepot.jsonl"
SETTINGS = [(10, 10, 0.5), (10, 10, 0.7), (5, 5, 0.7), (10, 20, 0.8)]  # (docs, terms, lam)


def main() -> int:
    import bm25s

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("runs/homedepot"))
    ap.add_argument("--split", choices=("eval", "validation"), default="eval")
    args = ap.parse_args()
    queries, pair_query, pair_pin, _ = eval_pairs(args.data, args.split)
    titles = read_table(DatasetPaths(args.data).pins, "pins").column("text").to_pylist()
    tokens = bm25s.tokenize(titles, lower=True, stopwords=BM25_STOPWORDS, show_progress=False)
    bm25 = bm25s.BM25(k1=1.5, b=0.75)
    bm25.index(tokens, show_progress=False)
    word = {i: w for w, i in bm25.vocab_dict.items()}
    q_tokens = bm25s.tokenize(queries, lower=True, stopwords=BM25_STOPWORDS, return_ids=False, show_progress=False)
    base = [bm25.get_scores([w for w in t if w in bm25.vocab_dict]) if any(w in bm25.vocab_dict for w in t)
            else np.zeros(len(titles), dtype=np.float32) for t in q_tokens]

    def recall(scores: list[np.ndarray]) -> dict[str, float]:
        ids = np.stack([np.argsort(-s, kind="stable")[:100] for s in scores])
        r = recall_at_k(pair_hit_rank(ids, pair_query, pair_pin), [10, 100])
        return {"recall@10": r[10], "recall@100": r[100]}

    rows = [{"system": "bm25", **recall(base)}]
    for docs, terms, lam in SETTINGS:
        out = []
        for s in base:
            if not s.any():
                out.append(s)
                continue
            top = np.argsort(-s)[:docs]
            weights: collections.Counter[int] = collections.Counter()
            for d, wd in zip(top, s[top] / s[top].sum(), strict=True):
                ids = tokens.ids[d]
                for i in ids:
                    weights[i] += wd / max(len(ids), 1)
            expansion = weights.most_common(terms)
            z = sum(v for _, v in expansion)
            e = sum((v / z) * bm25.get_scores([word[i]]) for i, v in expansion)
            out.append(lam * s / s.max() + (1 - lam) * e / max(float(e.max()), 1e-9))
        rows.append({"system": "bm25+rm3", "docs": docs, "terms": terms, "lam": lam, **recall(out)})
    commit = _commit()
    with RESULTS.open("a") as log:
        for row in rows:
            log.write(json.dumps({**row, "split": args.split, "commit": commit}) + "\n")
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
