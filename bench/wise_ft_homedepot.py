"""Weight-space ensembling (WiSE-FT) of trained Home Depot towers with their zero-shot start.

For each ``alpha``, every weight becomes ``alpha * fine_tuned + (1 - alpha) * zero_shot`` (the
zero-shot tower is the base model with the identity readout, i.e. where training started), and
Recall@10/@100 is measured with the protocol of ``bench/train_homedepot.py``. ``alpha = 1`` is the
trained tower itself.

Usage::

    python bench/wise_ft_homedepot.py RUN_DIR [RUN_DIR ...] [--alphas 1.0,0.9,0.8] [--data runs/homedepot] [--split validation]

Appends one JSON line per (run, alpha) to ``bench/results/wise_ft_homedepot.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from train_homedepot import RESULTS, _commit, eval_pairs, tower_recall

WISE_RESULTS = RESULTS.with_name("wise_ft_homedepot.jsonl")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--alphas", default="1.0,0.9,0.8")
    ap.add_argument("--data", type=Path, default=Path("runs/homedepot"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--split", choices=("eval", "validation"), default="eval",
                    help="score on the eval split or the validation split (to choose alpha honestly: runs "
                    "trained with --hold-out-validation)")
    args = ap.parse_args()
    import torch

    from encoders.eval.baselines import zero_shot_tower
    from encoders.model.tower import QueryTower
    from encoders.train.weight_space import interpolate_weights

    torch.set_num_threads(args.threads)
    queries, pair_q, pair_p, pin_emb = eval_pairs(args.data, args.split)
    commit = _commit()
    for run in args.runs:
        tower = QueryTower.load(run).eval()
        tuned = {k: v.clone() for k, v in tower.state_dict().items()}
        start = zero_shot_tower(tower.config.base_model, tower.config.max_length).state_dict()
        for alpha in (float(a) for a in args.alphas.split(",")):
            tower.load_state_dict(tuned)
            interpolate_weights(tower, start, alpha)
            r = tower_recall(tower, queries, pair_q, pair_p, pin_emb)
            rec = {"run": str(run), "alpha": alpha, "commit": commit, **r}
            if args.split != "eval":
                rec["split"] = args.split
            print(json.dumps(rec), flush=True)
            with WISE_RESULTS.open("a") as f:
                f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
