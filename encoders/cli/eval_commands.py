"""``searchsage evaluate``: Recall@k / nDCG@10 / P@8 of SearchSage against BM25 and zero-shot baselines."""

from __future__ import annotations

import argparse
from pathlib import Path

from encoders.cli_support import CLIError, add_pin_feedback_options, pin_feedback_from_args


def _int_list(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "evaluate",
        help="offline evaluation: Recall@k, nDCG@10, P@8 vs BM25 / zero-shot baselines",
        description="Rank an index of pins for every held-out query (md5(query) %% 10 == 0) with each "
        "system and report Recall@k over (query, engaged pin) pairs, nDCG@10 and P@8 from judgments, a "
        "per-task breakdown and paired-bootstrap CIs vs the best baseline. Writes eval_report.json and "
        "eval_report.md into --out, else into --run.",
    )
    p.add_argument("--data", required=True, type=Path, help="dataset directory (pins/engagements/judgments parquet)")
    p.add_argument("--run", type=Path, default=None, help="trained run directory (output of `searchsage train`)")
    p.add_argument(
        "--systems", default=None,
        help="comma-separated subset of bm25,zero_shot,searchsage,prf,blend "
        "(default: bm25,zero_shot, plus searchsage,prf,blend with --run)",
    )
    add_pin_feedback_options(p, "prf system")
    p.add_argument("--index-size", type=int, default=None,
                   help="index of N random pins (always holding the positives); default: all pins")
    p.add_argument("--k", type=_int_list, default=[10, 100], help="Recall cut-offs (default 10,100)")
    p.add_argument("--hnsw", action="store_true", help="also search a faiss HNSW index; report its recall vs exact")
    p.add_argument("--ef-search", type=int, default=128, help="HNSW efSearch (default 128)")
    p.add_argument("--hnsw-m", type=int, default=32, help="HNSW graph degree M (default 32)")
    p.add_argument("--base-model", default=None,
                   help="zero-shot base model directory (default: the run's base model, else the packaged MiniLM)")
    p.add_argument("--relevant-grade", type=float, default=None,
                   help="P@8 relevance threshold (default: dataset.json positive_threshold, else 2.67)")
    p.add_argument("--seed", type=int, default=0, help="seed for index sampling and the bootstrap (default 0)")
    p.add_argument("--bootstrap-reps", type=int, default=1000, help="bootstrap replicates (default 1000)")
    p.add_argument("--threads", type=int, default=None, help="torch/faiss threads (default: library default)")
    p.add_argument("--out", type=Path, default=None, help="output directory for the report (default: --run)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from encoders.eval.report import REPORT_JSON, REPORT_MD, evaluate
    from encoders.eval.retrieval import HNSWConfig
    from encoders.eval.systems import SystemOptions

    if args.out is None and args.run is None:
        raise CLIError("nowhere to write the report: pass --out DIR (or --run RUN to write into the run directory)")
    if args.index_size is not None and args.index_size < 1:
        raise CLIError(f"--index-size must be a positive integer, got {args.index_size}")
    if args.ef_search < 1 or args.hnsw_m < 2:
        raise CLIError("--ef-search must be >= 1 and --hnsw-m >= 2")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()] if args.systems else None
    feedback = pin_feedback_from_args(args)
    if args.threads:
        import faiss
        import torch

        torch.set_num_threads(args.threads)
        faiss.omp_set_num_threads(args.threads)
    report = evaluate(
        args.data, run_dir=args.run, systems=systems, index_size=args.index_size, k=args.k, hnsw=args.hnsw,
        hnsw_config=HNSWConfig(m=args.hnsw_m, ef_search=args.ef_search), base_model=args.base_model,
        relevant_grade=args.relevant_grade, seed=args.seed, bootstrap_reps=args.bootstrap_reps,
        options=SystemOptions(feedback=feedback), out_dir=args.out, progress=not args.no_progress,
    )
    out = args.out if args.out is not None else args.run
    print(report.to_markdown())
    print(f"wrote {Path(out) / REPORT_JSON} and {Path(out) / REPORT_MD}")
    return 0
