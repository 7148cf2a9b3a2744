"""``searchsage relevance evaluate``: Kendall tau, nDCG@10, grade accuracy of each system on judged pairs."""

from __future__ import annotations

import argparse
from pathlib import Path

from encoders.cli_support import CLIError, positive_int


def register(sub: argparse._SubParsersAction) -> None:
    from encoders.relevance.evaluate import EVAL_SPLITS
    from encoders.relevance.metrics import TIES
    from encoders.relevance.scorers import SYSTEMS

    p = sub.add_parser(
        "evaluate", help="score every judged pair of held-out queries with each system: Kendall tau, nDCG@10, ...",
        description="On the held-out queries (md5(query) % 10 == 0; --split validation: == 1) that hold two or more "
        "distinct grades, score every judged (query, pin) pair with each system and report per query and averaged: "
        "Kendall tau-b between scores and grades, nDCG@10 with exponential gain 2^(2(grade-lowest))-1 and linear "
        "gain, grade accuracy and MAE for systems that predict grades, and pairs/s; with paired-bootstrap CIs of "
        "each system's difference to --reference. Writes relevance_report.json, relevance_report.md and "
        "relevance_per_query.parquet into --out.",
    )
    p.add_argument("--data", required=True, type=Path, help="dataset directory (pins.parquet + judgments.parquet)")
    p.add_argument("--out", required=True, type=Path, help="output directory for the report")
    p.add_argument("--run", type=Path, default=None, help="query tower run directory (system 'tower')")
    p.add_argument("--teacher", type=Path, default=None, help="exported cross-encoder directory (system 'teacher')")
    p.add_argument("--student", type=Path, default=None, help="student model (system 'student')")
    p.add_argument("--systems", default=None,
                   help=f"comma-separated subset of {','.join(SYSTEMS)} (default: random,bm25,zero_shot, plus tower "
                   "with --run, teacher with --teacher, student with --student)")
    p.add_argument("--reference", default=None,
                   help="system the CIs compare against (default: tower when evaluated, else bm25)")
    p.add_argument("--split", choices=EVAL_SPLITS, default="eval", help="query split to report on (default eval)")
    p.add_argument("--max-queries", type=positive_int, default=None, help="seeded random subset of N queries")
    p.add_argument("--grade-scale", default=None, help="declared grade scale LO:HI (default: the judgments' min:max)")
    p.add_argument("--ties", choices=TIES, default="average",
                   help="nDCG for tied scores: 'average' (default) = each tied position holds the group's mean gain, "
                   "the expectation over random orders of the ties; 'worst' = tied items in ascending grade")
    p.add_argument("--base-model", type=Path, default=None,
                   help="zero-shot base model directory (default: the run's base model, else the packaged MiniLM)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random system, the subset and the bootstrap")
    p.add_argument("--bootstrap-reps", type=int, default=1000, help="bootstrap replicates (default 1000; 0 = no CIs)")
    p.add_argument("--threads", type=positive_int, default=None,
                   help="torch / onnxruntime threads (default: torch's default; teacher/student 1)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_evaluate)


def _systems(args: argparse.Namespace) -> list[str]:
    if args.systems:
        names = [s.strip() for s in args.systems.split(",") if s.strip()]
        if not names:
            raise CLIError(f"--systems: no system named in {args.systems!r}")
        return list(dict.fromkeys(names))
    names = ["random", "bm25", "zero_shot"]
    names += ["tower"] if args.run is not None else []
    names += ["teacher"] if args.teacher is not None else []
    names += ["student"] if args.student is not None else []
    return names


def cmd_evaluate(args: argparse.Namespace) -> int:
    from encoders.relevance.evaluate import default_reference, evaluate_systems, select_queries
    from encoders.relevance.pairs import GradeScale, load_judged_pairs
    from encoders.relevance.scorers import RelevanceEvalError, build_scorers

    if not args.data.is_dir():
        raise CLIError(f"dataset directory {args.data} does not exist")
    if not (args.data / "judgments.parquet").is_file():
        raise CLIError(f"{args.data / 'judgments.parquet'} not found: relevance evaluation scores judged "
                       "(query, pin_id, grade) pairs")
    if args.bootstrap_reps < 0:
        raise CLIError(f"--bootstrap-reps must be >= 0, got {args.bootstrap_reps}")
    systems = _systems(args)
    reference = args.reference or default_reference(systems)
    if reference is not None and reference not in systems:
        raise CLIError(f"--reference {reference!r} is not among the evaluated systems {systems}")
    try:
        scale = GradeScale.parse(args.grade_scale) if args.grade_scale else None
    except ValueError as exc:
        raise CLIError(f"--grade-scale: {exc}") from None
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    try:
        pairs = select_queries(load_judged_pairs(args.data, scale), args.split, args.max_queries, args.seed)
        scorers = build_scorers(
            systems, args.data, run_dir=args.run, teacher=args.teacher, student=args.student,
            base_model=args.base_model, seed=args.seed, threads=args.threads or 1,
        )
        report = evaluate_systems(
            pairs, scorers, reference=reference, ties=args.ties, seed=args.seed, bootstrap_reps=args.bootstrap_reps,
            progress=not args.no_progress, dataset=str(args.data), split=args.split, max_queries=args.max_queries,
        )
    except RelevanceEvalError as exc:
        raise CLIError(str(exc)) from None
    paths = report.write(args.out)
    print(report.to_markdown())
    print("wrote " + ", ".join(str(p) for p in paths))
    return 0
