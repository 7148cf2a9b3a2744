"""``searchsage relevance pin-stats`` (the ``pin_engagement`` Feast source) and ``train-student``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from encoders.cli_support import positive_int


def register(sub: Any) -> None:
    """Add ``pin-stats`` and ``train-student`` to the ``searchsage relevance`` sub-parsers ``sub``."""
    p = sub.add_parser(
        "pin-stats", help="write per-pin engagement statistics as the Feast source data/pin_engagement.parquet",
        description="Compute per-pin engagement statistics (counts per action, last-N-days count, distinct "
        "queries, smoothed engagements per query) from DIR/engagements.parquet, over train-split queries only "
        "(eval and validation queries never count), and write them into REPO/data/pin_engagement.parquet. "
        "Re-running with the same data leaves the file untouched. Then run `feast -c REPO apply` (declares the "
        "pin_engagement view) and `feast -c REPO materialize-incremental <now>`.")
    p.add_argument("--data", type=Path, required=True, help="dataset directory (engagements.parquet)")
    p.add_argument("--repo", type=Path, required=True, help="Feast repository (holds feature_store.yaml)")
    p.add_argument("--window-days", type=float, default=30.0,
                   help="recent-engagement window before the latest engagement (default 30)")
    p.add_argument("--smoothing", type=float, default=1.0,
                   help="pseudo-queries in eng_per_query = count / (distinct queries + smoothing) (default 1)")
    p.set_defaults(func=cmd_pin_stats)

    t = sub.add_parser(
        "train-student", help="distil the teacher's labels into a fast student ranker (LightGBM or MLP)",
        description="Train the relevance student on teacher labels (parquet: query, pin_id, grade, judged_grade, "
        "split) over train-split rows, stop and choose on validation rows, and save it to --out. Features come "
        "from a Feast repository (--repo: stock get_online_features + EmbeddingStore) or straight from the "
        "dataset (--bundle: an ONNX bundle's towers; --run: a tower run with pins.parquet embeddings). "
        "Training rows get out-of-fold engagement statistics computed from --data.")
    t.add_argument("--labels", type=Path, required=True, help="teacher labels parquet (searchsage relevance label)")
    t.add_argument("--data", type=Path, required=True, help="dataset directory (pins, engagements)")
    src = t.add_mutually_exclusive_group(required=True)
    src.add_argument("--repo", type=Path, help="materialised Feast repository to read features from")
    src.add_argument("--bundle", type=Path, help="ONNX bundle (query/ + pin/) to compute vectors without Redis")
    src.add_argument("--run", type=Path, help="tower run directory (queries) + pins.parquet:embedding (pins)")
    t.add_argument("--out", type=Path, required=True, help="student directory to write")
    t.add_argument("--family", choices=["lightgbm", "lightgbm_rank", "mlp", "auto"], default="auto",
                   help="model family; auto fits all three and keeps the best on validation (default auto)")
    t.add_argument("--select-on", choices=["teacher", "judged"], default="teacher",
                   help="validation nDCG@10 against teacher grades (all candidates) or human grades (judged "
                   "pairs) (default teacher)")
    t.add_argument("--grade-scale", default=None, help="LO:HI grade scale (default: from the labels' human grades)")
    t.add_argument("--folds", type=positive_int, default=5, help="query folds of the out-of-fold statistics (default 5)")
    t.add_argument("--projection-dims", type=positive_int, default=8,
                   help="dimensions of the projected query*pin product (default 8)")
    t.add_argument("--max-rounds", type=positive_int, default=1000, help="LightGBM boosting rounds cap (default 1000)")
    t.add_argument("--epochs", type=positive_int, default=30, help="MLP epochs cap (default 30)")
    t.add_argument("--threads", type=positive_int, default=2, help="CPU threads (default 2)")
    t.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    t.set_defaults(func=cmd_train_student)


def _error(msg: str) -> Exception:
    from encoders.cli_support import CLIError

    return CLIError(msg)


def _user_errors() -> tuple[type[BaseException], ...]:
    from encoders.redis_records.connection import RedisUnavailable
    from encoders.relevance.features import FeatureSourceError
    from encoders.runtime.manifest import BundleError

    return (FeatureSourceError, RedisUnavailable, BundleError, FileNotFoundError, ValueError)


def cmd_pin_stats(args: argparse.Namespace) -> int:
    from encoders.relevance.engagement_stats import (
        EngagementStatsConfig,
        pin_engagement_stats,
        read_engagements,
        write_stats_source,
    )

    if not args.data.is_dir():
        raise _error(f"--data {args.data}: not a directory")
    if not (args.repo / "feature_store.yaml").is_file():
        raise _error(f"--repo {args.repo}: no feature_store.yaml there (not a Feast repository)")
    try:
        config = EngagementStatsConfig(window_days=args.window_days, smoothing=args.smoothing)
    except ValueError as exc:
        raise _error(f"--window-days/--smoothing: {exc}") from None
    stats = pin_engagement_stats(read_engagements(args.data), config)
    written = write_stats_source(args.repo, stats)
    state = "written" if written.changed else "unchanged (same statistics)"
    print(f"{written.path}: {written.pins} pins with engagement from train-split queries, {state}")
    if written.changed:
        print(f"next: feast -c {args.repo} apply && feast -c {args.repo} materialize-incremental <now, UTC ISO>")
    return 0


def _source(args: argparse.Namespace) -> tuple[Any, str]:
    from encoders.relevance.feature_sources import DatasetFeatureSource, FeastFeatureSource

    if args.repo is not None:
        if not (args.repo / "feature_store.yaml").is_file():
            raise _error(f"--repo {args.repo}: no feature_store.yaml there (not a Feast repository)")
        return FeastFeatureSource(args.repo), f"feast:{args.repo.resolve()}"
    if args.bundle is not None:
        if not args.bundle.is_dir():
            raise _error(f"--bundle {args.bundle}: not a directory")
        return DatasetFeatureSource(args.data, bundle=args.bundle, threads=args.threads), f"bundle:{args.bundle.resolve()}"
    if not (args.run / "tower_config.json").is_file():
        raise _error(f"--run {args.run}: no tower_config.json there (not a training run)")
    return DatasetFeatureSource(args.data, run=args.run, threads=args.threads), f"run:{args.run.resolve()}"


def cmd_train_student(args: argparse.Namespace) -> int:
    from encoders.relevance.engagement_stats import EngagementStatsConfig
    from encoders.relevance.pairs import GradeScale
    from encoders.relevance.student import MANIFEST, StudentConfig, train_student
    from encoders.relevance.student_models import FamilyOptions

    if not args.data.is_dir():
        raise _error(f"--data {args.data}: not a directory")
    if not args.labels.is_file():
        raise _error(f"--labels {args.labels}: file not found (write it with `searchsage relevance label`)")
    if args.out.exists() and (not args.out.is_dir() or (any(args.out.iterdir()) and not (args.out / MANIFEST).is_file())):
        raise _error(f"--out {args.out}: exists and is not a student directory; choose another path")
    try:
        scale = GradeScale.parse(args.grade_scale) if args.grade_scale else None
    except ValueError as exc:
        raise _error(f"--grade-scale: {exc}") from None
    if args.folds < 2:
        raise _error("--folds must be at least 2")
    config = StudentConfig(
        family=args.family, select_on=args.select_on, projection_dims=args.projection_dims, scale=scale,
        stats=EngagementStatsConfig(folds=args.folds),
        options=FamilyOptions(threads=args.threads, seed=args.seed, max_rounds=args.max_rounds, epochs=args.epochs),
    )
    try:
        source, described = _source(args)
        report = train_student(args.labels, args.data, source, args.out, config, described, log=print)
    except _user_errors() as exc:
        from encoders.data.schema import DataValidationError

        if isinstance(exc, DataValidationError):
            raise
        raise _error(str(exc)) from exc
    import json

    from encoders.relevance.model_card import CARD_NAME, student_card
    from encoders.relevance.student import MANIFEST

    (report.out / CARD_NAME).write_text(student_card(json.loads((report.out / MANIFEST).read_text())))
    print(f"student: {report.family} ({report.train_rows} train / {report.validation_rows} validation pairs, "
          f"{len(report.feature_names)} features) -> {report.out}")
    for r in report.results:
        v = r.validation
        mark = "*" if r.family == report.family else " "
        print(f" {mark} {r.family:<14} nDCG@10 teacher {v['ndcg10_teacher']:.4f}  judged {v['ndcg10_judged']:.4f}  "
              f"RMSE {v['rmse_teacher']:.4f}  ({r.seconds:.1f}s)")
    return 0
