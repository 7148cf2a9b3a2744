"""``searchsage homefeed ...``: the user tower for homefeed retrieval (data, training, evaluation, serving).

    searchsage homefeed generate --out DIR [--n-users N --n-pins N --pin-embeddings minilm|structured ...]
    searchsage homefeed train --data DIR --out RUN [--ablations] [--no-id-embeddings] [--no-feature-crossing] ...
    searchsage homefeed evaluate --data DIR --run RUN --out DIR [--corpus-size N --half-life-days D]
    searchsage homefeed embed --data DIR --run RUN --out FILE.parquet [--at ISO] [--interest ID]
    searchsage homefeed export --run RUN --out DIR

Options are declared once, in :class:`~encoders.homefeed.synthetic.HomefeedSynthConfig`,
:class:`~encoders.homefeed.config.HomefeedTrainConfig` and
:class:`~encoders.homefeed.config.HomefeedEvalConfig`; the flags are generated from them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from encoders.cli_support import CLIError, add_config_options, command_group, config_from_args, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``homefeed`` command group."""
    from encoders.homefeed.config import HomefeedEvalConfig, HomefeedTrainConfig
    from encoders.homefeed.synthetic import HomefeedSynthConfig

    sub = command_group(subparsers, "homefeed", "homefeed retrieval: a user tower into the frozen pin space")

    gen = sub.add_parser("generate", help="generate the seeded synthetic homefeed dataset",
                         description="Users with drifting interest mixtures, styles and journeys engaging with the "
                         "synthetic catalogue: events.parquet, user_interests.parquet, pin_interests.parquet and "
                         "pins.parquet with frozen embeddings. Same options give identical tables.")
    gen.add_argument("--out", required=True, type=Path, help="dataset directory to write")
    add_config_options(gen, HomefeedSynthConfig)
    gen.add_argument("--no-progress", action="store_true", help="hide progress bars")
    gen.set_defaults(func=_cmd_generate)

    train = sub.add_parser("train", help="train the user tower (time-based split)",
                           description="Train the user tower on the positive events before the split time: "
                           "attention over recent pins (time-aware), user/interest ID embeddings, MaskNet feature "
                           "crossing, readout into the frozen pin space; in-batch softmax. Writes RUN/ (tower, "
                           "vocabularies, checkpoint, train_log.jsonl, train_summary.json).")
    help_of = {f: HomefeedTrainConfig.__dataclass_fields__[f].metadata["help"] for f in ("data", "out")}
    train.add_argument("--data", required=True, help=help_of["data"])
    train.add_argument("--out", required=True, help=help_of["out"])
    add_config_options(train, HomefeedTrainConfig, skip=("data", "out"))
    train.add_argument("--ablations", action="store_true",
                       help="also train the variants without ID embeddings and without feature crossing into "
                       "RUN/ablations/ (same data, split, seed and budget each)")
    train.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.set_defaults(func=_cmd_train)

    ev = sub.add_parser("evaluate", help="Recall@k of post-split engagements vs baselines, with paired CIs",
                        description="Recall@10/50/100 of the post-split engagements (pins new to the user) per "
                        "action and overall, for the tower, its ablations (RUN/ablations/), the mean of recent pins "
                        "and popularity, on the full index and on top-N corpora by time-decayed and all-time "
                        "engagement; paired bootstrap CIs over users. Writes eval_report.json + eval_report.md.")
    help_of = {f: HomefeedEvalConfig.__dataclass_fields__[f].metadata["help"] for f in ("data", "run", "out")}
    for name in ("data", "run", "out"):
        ev.add_argument(f"--{name}", required=True, help=help_of[name])
    add_config_options(ev, HomefeedEvalConfig, skip=("data", "run", "out"))
    ev.add_argument("--no-progress", action="store_true", help="hide progress bars")
    ev.set_defaults(func=_cmd_evaluate)

    emb = sub.add_parser("embed", help="every user's embedding as of a time → parquet",
                         description="Embed every user of the events (in batches) with a trained run and write "
                         "user_id, embedding (list<float32>), model_version as parquet — the offline source a "
                         "feature store materialises.")
    emb.add_argument("--data", required=True, type=Path, help="homefeed dataset directory")
    emb.add_argument("--run", required=True, type=Path, help="run directory of `searchsage homefeed train`")
    emb.add_argument("--out", required=True, type=Path, help="parquet file to write")
    emb.add_argument("--at", default=None, metavar="ISO", help="only events before this time count "
                     "(default: all events)")
    emb.add_argument("--interest", default=None, help="condition every user on this interest id (e.g. cat:kitchen)")
    emb.add_argument("--batch-size", type=positive_int, default=2048, help="users per batch (default 2048)")
    emb.add_argument("--threads", type=positive_int, default=2, help="torch threads (default 2)")
    emb.set_defaults(func=_cmd_embed)

    exp = sub.add_parser("export", help="export the user tower to ONNX (torch-free scoring)",
                         description="Export RUN's user tower to OUT/model.onnx with its vocabularies and a manifest; "
                         "onnxruntime must match torch within 1e-4 on a parity batch.")
    exp.add_argument("--run", required=True, type=Path, help="run directory of `searchsage homefeed train`")
    exp.add_argument("--out", required=True, type=Path, help="bundle directory to write")
    exp.set_defaults(func=_cmd_export)


def _cmd_generate(args: argparse.Namespace) -> int:
    from encoders.homefeed.synthetic import HomefeedSynthConfig, write_synthetic_homefeed

    config = config_from_args(HomefeedSynthConfig, args, progress=not args.no_progress)
    try:
        paths = write_synthetic_homefeed(args.out, config)
    except ValueError as exc:  # --pins-from that is not this catalogue; DataValidationError naming the file
        raise CLIError(str(exc)) from None
    print((paths.root / "homefeed_dataset.json").read_text())
    print(f"wrote {paths.root}")
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from encoders.homefeed.config import HomefeedTrainConfig

    config = config_from_args(HomefeedTrainConfig, args, progress=not args.no_progress)
    if args.ablations and args.resume:
        raise CLIError("--resume continues one run; it cannot be combined with --ablations")
    try:
        if args.ablations:
            from encoders.homefeed.ablations import train_with_ablations

            results = train_with_ablations(config)
        else:
            from encoders.homefeed.train import train_homefeed

            results = {"tower": train_homefeed(config, resume=args.resume)}
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    for name, r in results.items():
        print(f"{name}: {r.steps} steps ({r.epochs:.2f} epochs) in {r.wall_time_s:.0f} s, final loss "
              f"{r.final_loss:.4f}, stopped by {r.stopped_by}, split {r.split_iso} → {r.run_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from encoders.homefeed.config import HomefeedEvalConfig
    from encoders.homefeed.evaluate import evaluate_homefeed
    from encoders.homefeed.report import write_report

    config = config_from_args(HomefeedEvalConfig, args, progress=not args.no_progress)
    try:
        report = evaluate_homefeed(config)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    js, md = write_report(report, config.out)
    print(md.read_text())
    print(f"wrote {js} and {md}")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    import pyarrow.parquet as pq

    from encoders.homefeed.embed import compute_user_embeddings

    try:
        result = compute_user_embeddings(args.run, args.data, at=args.at, interest_id=args.interest,
                                         batch_size=args.batch_size, threads=args.threads)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(result.to_table(), args.out, compression="zstd")
    print(f"embedded {len(result.user_ids):,} users (D={result.vectors.shape[1]}, as of {result.at_iso}, "
          f"{result.model_version}) → {args.out}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from encoders.homefeed.onnx_export import export_user_tower

    try:
        manifest = export_user_tower(args.run, args.out)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    print(f"exported {manifest['model_version']} → {args.out}/model.onnx "
          f"(parity max |Δ| {manifest['parity']['max_abs_diff']:.1e})")
    return 0
