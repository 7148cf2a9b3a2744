"""``searchsage evaluate``: Recall@k / nDCG@10 / P@8 of SearchSage against BM25 and zero-shot baselines.

The evaluation options' flags are generated from :class:`encoders.eval.config.EvalConfig` (each
option's default, help, type and checks are declared there, once); only ``--data`` (required),
``--prf-k``/``--prf-weight`` (:class:`~encoders.runtime.pin_feedback.PinFeedback`'s) and
``--no-progress`` are declared here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from encoders.cli_support import (
    CLIError,
    add_config_options,
    add_pin_feedback_options,
    config_from_args,
    pin_feedback_from_args,
)

#: EvalConfig fields whose flags come before --prf-k/--prf-weight in the help (the rest come after).
_BEFORE_FEEDBACK = ("run", "systems")


def register(subparsers: argparse._SubParsersAction) -> None:
    import dataclasses

    from encoders.eval.config import EvalConfig

    p = subparsers.add_parser(
        "evaluate",
        help="offline evaluation: Recall@k, nDCG@10, P@8 vs BM25 / zero-shot baselines",
        description="Rank an index of pins for every held-out query (md5(query) %% 10 == 0) with each "
        "system and report Recall@k over (query, engaged pin) pairs, nDCG@10 and P@8 from judgments, a "
        "per-task breakdown and paired-bootstrap CIs vs the best baseline. Writes eval_report.json and "
        "eval_report.md into --out, else into --run.",
    )
    p.add_argument("--data", required=True, type=Path, help="dataset directory (pins/engagements/judgments parquet)")
    after = tuple(f.name for f in dataclasses.fields(EvalConfig) if f.name not in _BEFORE_FEEDBACK)
    add_config_options(p, EvalConfig, skip=after)
    add_pin_feedback_options(p, "prf system")
    add_config_options(p, EvalConfig, skip=_BEFORE_FEEDBACK)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from encoders.eval.config import EvalConfig
    from encoders.eval.report import REPORT_JSON, REPORT_MD, evaluate
    from encoders.eval.systems import SystemOptions

    if args.out is None and args.run is None:
        raise CLIError("nowhere to write the report: pass --out DIR (or --run RUN to write into the run directory)")
    config = config_from_args(EvalConfig, args)
    feedback = pin_feedback_from_args(args)
    if config.threads:
        import faiss
        import torch

        torch.set_num_threads(config.threads)
        faiss.omp_set_num_threads(config.threads)
    report = evaluate(
        args.data, run_dir=config.run, systems=config.systems, index_size=config.index_size, k=config.k,
        hnsw=config.hnsw, hnsw_config=config.hnsw_config(), base_model=config.base_model,
        relevant_grade=config.relevant_grade, seed=config.seed, bootstrap_reps=config.bootstrap_reps,
        options=SystemOptions(feedback=feedback), out_dir=config.out, progress=not args.no_progress,
    )
    out = config.out if config.out is not None else config.run
    print(report.to_markdown())
    print(f"wrote {Path(out) / REPORT_JSON} and {Path(out) / REPORT_MD}")
    return 0
