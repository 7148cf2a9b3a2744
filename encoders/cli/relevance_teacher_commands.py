"""``searchsage relevance train-teacher`` and ``searchsage relevance label``."""

from __future__ import annotations

import argparse
from pathlib import Path

from encoders.cli_support import CLIError, add_config_options, config_from_args

TEACHER_HELP = {
    "base_model": "local transformers directory to fine-tune (default: the packaged all-MiniLM-L6-v2)",
    "max_length": "max tokens of [CLS] query [SEP] title [SEP]",
    "batch_pairs": "pairs per step (whole queries are packed until this many)",
    "lr": "peak learning rate (AdamW, linear warm-up and decay)",
    "weight_decay": "AdamW weight decay",
    "warmup": "share of the steps spent warming up",
    "epochs": "passes over the training pairs (the schedule is planned for this many)",
    "max_minutes": "time budget: the schedule is re-planned every 10 steps to end inside it",
    "pairwise_weight": "weight of the within-query RankNet loss next to the pointwise BCE (0 = off)",
    "precision": "bf16 = CPU/GPU bfloat16 autocast for the forward pass",
    "device": "torch device (cpu, cuda, cuda:N)",
    "threads": "torch threads",
    "seed": "seed for the step order and the head's initialisation (and of the validation sample)",
    "max_validation_pairs": "calibrate and report on at most this many validation pairs (whole queries, a "
                            "seeded sample)",
}


def register(sub: argparse._SubParsersAction) -> None:
    from encoders.relevance.teacher_train import TeacherConfig

    p = sub.add_parser(
        "train-teacher", help="fine-tune a cross-encoder on the judgments, calibrate, export to ONNX",
        description="Fine-tune a cross-encoder (query, pin text) -> grade on the judgments of the train split "
        "(md5(query) %% 10 not in {0, 1}), calibrate it to the grade scale on the validation split (% 10 == 1), "
        "export it to ONNX (fp32, and int8 when the parity gate allows) into OUT/onnx, and write "
        "OUT/teacher.json (training figures, calibration report).",
    )
    p.add_argument("--data", required=True, type=Path, help="dataset directory (pins.parquet + judgments.parquet)")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--grade-scale", default=None,
                   help="declared grade scale LO:HI (default: the judgments' min:max); grades outside are an error")
    add_config_options(p, TeacherConfig, TEACHER_HELP)
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=cmd_train_teacher)

    lab = sub.add_parser(
        "label", help="teacher grades for judged pairs and retrieved candidates (the student's training labels)",
        description="Score with the teacher (torch-free) every judged pair of the train and validation queries and "
        "the top --candidates pins that retrieval returns for each of those queries (tower run with --run, else "
        "the pins' frozen embeddings searched with the zero-shot model), and write a parquet of query, pin_id, "
        "grade (teacher), judged_grade (human, NaN when unjudged), split.",
    )
    lab.add_argument("--teacher", required=True, type=Path, help="teacher directory (train-teacher's OUT)")
    lab.add_argument("--data", required=True, type=Path, help="dataset directory")
    lab.add_argument("--out", required=True, type=Path, help="labels parquet to write")
    lab.add_argument("--run", type=Path, default=None, help="query tower run directory for candidate retrieval")
    lab.add_argument("--candidates", type=int, default=10, help="retrieved candidates per query (default 10; 0 = none)")
    lab.add_argument("--splits", default="train,validation", help="query splits to label (default train,validation)")
    lab.add_argument("--judged-per-query", type=int, default=None,
                     help="at most this many judged pairs per query, a seeded sample (default: all)")
    lab.add_argument("--seed", type=int, default=0, help="seed of that sample (default 0)")
    lab.add_argument("--variant", choices=("fp32", "int8"), default=None, help="teacher variant (default: recommended)")
    lab.add_argument("--threads", type=int, default=2, help="onnxruntime / torch threads (default 2)")
    lab.add_argument("--no-progress", action="store_true", help="hide progress bars")
    lab.set_defaults(func=cmd_label)


def cmd_train_teacher(args: argparse.Namespace) -> int:
    from encoders.relevance.pairs import GradeScale, load_judged_pairs
    from encoders.relevance.teacher_model import TeacherModelError
    from encoders.relevance.teacher_train import TeacherConfig, save_teacher, train_teacher

    config = config_from_args(TeacherConfig, args)
    try:
        scale = GradeScale.parse(args.grade_scale) if args.grade_scale else None
    except ValueError as exc:
        raise CLIError(f"--grade-scale: {exc}") from None
    pairs = load_judged_pairs(args.data, scale)
    try:
        model, tok, result = train_teacher(pairs, config, progress=not args.no_progress)
    except (TeacherModelError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    save_teacher(model, tok, config, result, pairs.scale.to_dict(), args.out)
    from encoders.relevance.teacher_export import export_teacher

    check = pairs.subset("validation")
    check = check.subset(slice(0, 512)) if len(check) else pairs.subset("train").subset(slice(0, 256))
    manifest = export_teacher(
        model, tok, args.out / "onnx", base_model=str(config.base_model or "all-MiniLM-L6-v2 (packaged)"),
        scale=pairs.scale.to_dict(), calibration=result.calibration, check_pairs=check,
        training={"steps": result.steps, "epochs": result.epochs_done, "seconds": result.seconds},
        threads=config.threads or 2,
    )
    import json
    from dataclasses import asdict

    from encoders.relevance.model_card import CARD_NAME, teacher_card

    meta = json.loads((args.out / "teacher.json").read_text())
    (args.out / CARD_NAME).write_text(teacher_card(meta, asdict(manifest)))
    v = result.validation
    print(f"teacher: {result.steps} steps, {result.epochs_done:.2f} epochs in {result.seconds:.0f} s; "
          f"validation Kendall tau {v.get('kendall_tau', float('nan')):.3f} over {v.get('queries', 0)} queries")
    if v:
        print(f"calibration (validation): MAE {v['calibration_uncalibrated']['mae']:.3f} -> {v['calibration']['mae']:.3f}, "
              f"ECE {v['calibration_uncalibrated']['ece']:.3f} -> {v['calibration']['ece']:.3f}")
    par = manifest.parity
    print(f"export: {args.out / 'onnx'} (recommended {manifest.recommended_variant}; fp32 max |diff| "
          f"{par['fp32_max_abs_diff']:.1e}; int8 corr {par.get('int8_corr', float('nan')):.4f})")
    return 0


def cmd_label(args: argparse.Namespace) -> int:
    from encoders.relevance.labels import label_pairs

    splits = tuple(s.strip() for s in args.splits.split(",") if s.strip())
    bad = [s for s in splits if s not in ("train", "validation", "eval")]
    if bad or not splits:
        raise CLIError(f"--splits: expected names among train,validation,eval, got {args.splits!r}")
    if args.judged_per_query is not None and args.judged_per_query < 1:
        raise CLIError(f"--judged-per-query must be >= 1, got {args.judged_per_query}")
    if args.candidates < 0:
        raise CLIError(f"--candidates must be >= 0, got {args.candidates}")
    table = label_pairs(args.teacher, args.data, args.out, run_dir=args.run, candidates=args.candidates,
                        splits=splits, variant=args.variant, judged_per_query=args.judged_per_query, seed=args.seed,
                        threads=args.threads, progress=not args.no_progress)
    judged = int((~table["judged_grade"].isna()).sum())
    print(f"wrote {args.out}: {len(table)} pairs ({judged} judged, {len(table) - judged} retrieved candidates)")
    return 0
