"""``searchsage data ...`` and ``searchsage pins ...``: make, import, check and embed datasets.

    searchsage data synth --out DIR [--preset small|default] [--pins N --queries N --engagements N --seed S] [--judgments eval|all]
    searchsage data import-homedepot CSV --out DIR [--encoding latin-1] [--threshold 2.67]
    searchsage data validate DIR
    searchsage pins embed DIR [--runtime onnx-fp32|onnx-int8|torch] [--base-model PATH] [--force] [--threads N]
                              [--batch-size N] [--max-tokens N] [--max-length N] [--onnx-cache DIR]
                              [--fp32-max-abs X] [--int8-cos-mean X] [--int8-cos-min X] [--no-progress]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from encoders.cli_support import CLIError, add_config_options, command_group, config_from_args, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``data`` and ``pins`` command groups."""
    from encoders.data.pin_embeddings import PinEmbedOptions
    from encoders.export.config import ParityThresholds

    data_sub = command_group(subparsers, "data", "make, import and validate datasets (pins/engagements/judgments)")

    synth = data_sub.add_parser(
        "synth", help="generate the deterministic synthetic demo dataset",
        description="Generate a synthetic catalogue, Zipf query log, organic + shopping engagement and "
        "graded judgments. Same arguments give byte-identical files.",
    )
    synth.add_argument("--out", required=True, type=Path, help="dataset directory to write")
    synth.add_argument("--preset", choices=["default", "small"], default="default",
                       help="size preset (small: 500 pins, 150 queries, for tests); flags below override it")
    synth.add_argument("--pins", type=positive_int, help="number of pins (default 20000)")
    synth.add_argument("--queries", type=positive_int, help="number of distinct queries (default 3000)")
    synth.add_argument("--engagements", type=positive_int, help="number of engagements (default 20 per query)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--judgments", choices=["eval", "all"], default="eval",
                       help="judge the eval queries only (default; enough for evaluation) or every query (what a "
                       "relevance teacher trains on: `searchsage relevance train-teacher`)")
    synth.set_defaults(func=_cmd_synth)

    imp = data_sub.add_parser(
        "import-homedepot", help="import the Kaggle Home Depot train.csv",
        description="Turn the Kaggle 'Home Depot Product Search Relevance' train.csv into a dataset: "
        "products → pins, pairs with relevance >= threshold → shopping long_click engagements, "
        "all pairs → judgments. The CSV is read in chunks and not copied.",
    )
    imp.add_argument("csv", type=Path, help="path to train.csv (latin-1)")
    imp.add_argument("--out", required=True, type=Path, help="dataset directory to write")
    imp.add_argument("--encoding", default="latin-1", help="CSV encoding (default latin-1, as Kaggle ships it)")
    imp.add_argument("--threshold", type=float, default=2.67,
                     help="relevance at or above which a pair counts as an engagement (default 2.67)")
    imp.set_defaults(func=_cmd_import)

    val = data_sub.add_parser(
        "validate", help="check a dataset directory against the documented schema",
        description="Read pins/engagements/judgments parquet files, check types, nulls, unique pin ids, "
        "embedding lengths and that every engaged pin exists.",
    )
    val.add_argument("dir", type=Path, help="dataset directory")
    val.set_defaults(func=_cmd_validate)

    pins_sub = command_group(subparsers, "pins", "the frozen pin tower: compute pin embeddings")
    emb = pins_sub.add_parser(
        "embed", help="embed pin texts with the base model into pins.parquet:embedding",
        description="Mean-pooled, L2-normalised base-model embeddings of pin texts, written into "
        "pins.parquet and described in pin_tower.json. Cached: re-running with the same texts and "
        "model does nothing. Embeddings you provided yourself are never overwritten without --force. "
        "The onnx runtimes export the base model once (into --onnx-cache) and check it against torch: "
        "onnx-fp32 must match torch within --fp32-max-abs, onnx-int8 must also reach --int8-cos-mean/"
        "--int8-cos-min against fp32 (on the export's check set and on a sample of these pins) or is refused.",
    )
    emb.add_argument("dir", type=Path, help="dataset directory holding pins.parquet")
    add_config_options(emb, PinEmbedOptions)
    add_config_options(emb, ParityThresholds)
    emb.set_defaults(func=_cmd_embed)


def _cmd_synth(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from encoders.data.synthetic import PRESETS, write_synthetic

    config = PRESETS[args.preset]
    changes: dict[str, object] = {"seed": args.seed, "judgments": args.judgments}
    if args.pins is not None:
        changes["n_pins"] = args.pins
    if args.queries is not None:
        changes["n_queries"] = args.queries
    if args.engagements is not None:
        changes["n_engagements"] = args.engagements
    elif args.queries is not None:
        changes["n_engagements"] = 20 * args.queries
    config = replace(config, **changes)
    t0 = time.perf_counter()
    try:
        paths = write_synthetic(args.out, config)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    _print_summary(paths.root, time.perf_counter() - t0)
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from encoders.data.homedepot import import_homedepot

    t0 = time.perf_counter()
    try:
        paths = import_homedepot(args.csv, args.out, encoding=args.encoding, positive_threshold=args.threshold)
    except LookupError as exc:  # unknown codec name
        raise CLIError(f"--encoding {args.encoding!r}: {exc}") from None
    _print_summary(paths.root, time.perf_counter() - t0)
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from encoders.data.dataset_check import check_dataset

    report = check_dataset(args.dir)
    for line in report:
        print(line)
    print(f"{args.dir}: OK")
    return 0


def _cmd_embed(args: argparse.Namespace) -> int:
    from encoders.data.pin_embeddings import PinEmbedError, PinEmbedOptions, embed_pins
    from encoders.export.config import ParityThresholds

    if not (args.dir / "pins.parquet").exists():
        raise CLIError(f"{args.dir}: no pins.parquet (expected a dataset directory; see `searchsage data --help`)")
    o = config_from_args(PinEmbedOptions, args)
    try:
        embed_pins(args.dir, o.base_model, batch_size=o.batch_size, max_length=o.max_length, force=o.force,
                   threads=o.threads, progress=o.progress, runtime=o.runtime, max_tokens=o.max_tokens,
                   onnx_cache=o.onnx_cache, thresholds=config_from_args(ParityThresholds, args))
    except PinEmbedError as exc:
        raise CLIError(str(exc)) from None
    return 0


def _print_summary(root: Path, seconds: float) -> None:
    from encoders.data.dataset_check import check_dataset

    for line in check_dataset(root):
        print(line)
    print(f"wrote {root} in {seconds:.1f} s")
