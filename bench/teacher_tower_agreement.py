"""How close trained query towers are to the relevance teacher on held-out validation queries.

For every validation query (``encoders.data.split.is_validation_query``: held out of training by
``--hold-out-validation``) that has teacher labels (``searchsage relevance label``, e.g.
``runs/hd_labels.parquet``), over that query's labelled pins:

* **KL(teacher ‖ tower)**: the distillation loss of :func:`encoders.train.distill.distill_loss` --
  the teacher's ``softmax(grade / T)`` against the tower's ``softmax(q · p / τ)`` -- averaged over
  the queries (T = 0.05 and a fixed τ = 0.026 by default, the training settings of
  ``docs/training.md``);
* **top-1 agreement**: the share of queries whose highest-scoring labelled pin for the tower
  (``q · p``) is the teacher's highest-graded one.

Prints one line per run directory (a saved :class:`~encoders.model.tower.QueryTower`)::

    RUN: validation queries N, KL(T=0.05, tau=0.026) K, top-1 agreement A

Usage::

    .venv/bin/python bench/teacher_tower_agreement.py [--data runs/homedepot] [--labels runs/hd_labels.parquet] RUN [RUN ...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# bench/abtest.py would shadow the abtest package when run as a script from this folder
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from encoders.data.split import is_validation_query  # noqa: E402
from encoders.train.distill import (  # noqa: E402
    DistillTargets,
    TeacherLabels,
    TeacherLabelsError,
    distill_loss,
    load_teacher_labels,
)

TEACHER_TEMPERATURE = 0.05
TAU = 0.026


def validation_queries(labels: TeacherLabels) -> list[str]:
    """The labelled validation queries, sorted."""
    return sorted(q for q in labels.by_query if is_validation_query(q))


def teacher_agreement(query_emb: torch.Tensor, pins: torch.Tensor, targets: DistillTargets,
                      tau: float = TAU) -> tuple[float, float]:
    """``(mean KL(teacher ‖ tower), top-1 agreement)`` of query embeddings ``(B, D)`` (row
    ``targets.rows[i]`` is the ``i``-th labelled query) against the pin matrix ``(P, D)``."""
    q = query_emb.float()
    kl = distill_loss(q, pins, tau, targets).item()
    # top-1 agreement: the tower's best labelled candidate is the teacher's best
    s = torch.einsum("qd,qcd->qc", q[targets.rows], pins[targets.candidates]).masked_fill(~targets.valid, -1e9)
    agree = (s.argmax(1) == targets.teacher.argmax(1)).float().mean().item()
    return kl, agree


def format_line(run: str, n_queries: int, kl: float, agree: float, teacher_temperature: float = TEACHER_TEMPERATURE,
                tau: float = TAU) -> str:
    return (f"{run}: validation queries {n_queries}, KL(T={teacher_temperature}, tau={tau}) {kl:.4f}, "
            f"top-1 agreement {agree:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("runs/homedepot"),
                    help="the dataset directory whose pins.parquet the labels refer to (default: runs/homedepot)")
    ap.add_argument("--labels", type=Path, default=Path("runs/hd_labels.parquet"),
                    help="the teacher labels parquet (default: runs/hd_labels.parquet)")
    ap.add_argument("--teacher-temperature", type=float, default=TEACHER_TEMPERATURE,
                    help=f"T of the teacher's softmax(grade / T) (default {TEACHER_TEMPERATURE})")
    ap.add_argument("--tau", type=float, default=TAU, help=f"τ of the tower's softmax(q · p / τ) (default {TAU})")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for encoding (default 1)")
    ap.add_argument("runs", nargs="+", help="run directories of saved query towers")
    args = ap.parse_args(argv)
    for run in args.runs:
        if not (Path(run) / "tower_config.json").is_file():
            ap.error(f"run {run}: no tower_config.json (not a saved query tower's run directory)")
    if not args.data.is_dir():
        ap.error(f"--data {args.data}: not a directory")
    if args.teacher_temperature <= 0 or args.tau <= 0:
        ap.error("--teacher-temperature and --tau must be > 0")

    from encoders.model.tower import QueryTower, encode_texts, load_tokenizer
    from encoders.train.trainer import load_training_data

    torch.set_num_threads(args.threads)
    pin_ids, _, emb, _, _ = load_training_data(args.data, engagements=False)
    try:
        labels = load_teacher_labels(args.labels, {p: i for i, p in enumerate(pin_ids)})
    except TeacherLabelsError as exc:
        ap.error(str(exc))
    queries = validation_queries(labels)
    targets = labels.targets(queries, args.teacher_temperature)
    if targets is None:
        ap.error(f"--labels {args.labels}: no validation query has teacher labels")
    pins = torch.from_numpy(np.array(emb, dtype=np.float32))
    for run in args.runs:
        tower = QueryTower.load(run)
        q = encode_texts(tower, load_tokenizer(tower.config.base_model), queries, tower.config.max_length)
        kl, agree = teacher_agreement(q, pins, targets, args.tau)
        print(format_line(run, len(queries), kl, agree, args.teacher_temperature, args.tau))
    return 0


if __name__ == "__main__":
    sys.exit(main())
