"""``searchsage train``: fine-tune the query tower into the frozen pin space of a dataset."""

from __future__ import annotations

import argparse


def _window(text: str) -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two integers, e.g. 10,100), got {text!r}") from None
    if not 0 <= lo < hi:
        raise argparse.ArgumentTypeError(f"rank window needs 0 <= LO < HI, got {text!r}")
    return lo, hi


def _task_weights(text: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in text.split(","):
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected TASK=WEIGHT[,TASK=WEIGHT] (e.g. organic=0.5,shopping=0.5), got {text!r}"
            ) from None
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the query tower against frozen pin embeddings",
        description="Fine-tune the query tower (pretrained Transformer + pooling + linear readout) so that "
        "query embeddings land in the frozen pin space of DATA/pins.parquet:embedding. Softmax over "
        "in-batch positives plus optional hard/random/queued negatives. Writes a run directory "
        "(tower, checkpoint.pt, train_log.jsonl, train_summary.json).",
    )
    p.add_argument("--data", required=True, help="dataset directory (pins.parquet with embedding, engagements.parquet)")
    p.add_argument("--out", required=True, help="run directory to write (or resume)")
    p.add_argument("--base-model", default=None, help="local transformers directory (default: packaged MiniLM)")
    p.add_argument("--pooling", choices=["mean", "cls"], default="mean", help="pooling (default mean: measured best)")
    p.add_argument("--max-length", type=int, default=32, help="max query tokens (default 32)")
    p.add_argument("--train-layers", type=int, default=None,
                   help="fine-tune only the top N encoder layers (default: all; 0 = readout only)")
    p.add_argument("--epochs", type=float, default=2.0, help="epochs (fractional allowed; default 2)")
    p.add_argument("--batch-size", type=int, default=128, help="pairs per step (default 128)")
    p.add_argument("--lr", type=float, default=5e-5, help="encoder learning rate (default 5e-5)")
    p.add_argument("--readout-lr", type=float, default=1e-3, help="readout learning rate (default 1e-3)")
    p.add_argument("--temperature", type=float, default=0.05, help="softmax temperature or its init (default 0.05)")
    p.add_argument("--learn-temperature", action="store_true", help="learn log(temperature)")
    p.add_argument("--max-per-pin", type=int, default=20, help="cap on a pin's appearances per epoch (0 = none)")
    p.add_argument("--task-weights", type=_task_weights, default=None,
                   help="multitask blend, e.g. organic=0.5,shopping=0.5 (default; absent tasks dropped)")
    p.add_argument("--hard-negatives", type=int, default=0, help="mined hard negatives per query per step")
    p.add_argument("--hard-negative-source", choices=["bm25", "zeroshot", "both"], default="bm25")
    p.add_argument("--hard-negative-window", type=_window, default=(10, 100), help="rank window LO,HI (default 10,100)")
    p.add_argument("--hard-negative-cache", default=None,
                   help="npz file shared between runs with the same data + mining options (load or write)")
    p.add_argument("--random-negatives", type=int, default=0,
                   help="uniform random pins per step as extra negatives (-1 = the whole catalogue)")
    p.add_argument("--queue-size", type=int, default=0, help="recent positives kept as extra negatives")
    p.add_argument("--extra-positive-grade", type=float, default=None,
                   help="also train on judged pairs with grade >= this (weighted by --extra-positive-weight)")
    p.add_argument("--extra-positive-weight", type=float, default=0.5)
    p.add_argument("--length-buckets", type=int, default=8,
                   help="encode each step's queries in this many length-sorted chunks, each padded to its "
                   "own longest query (less padding: 2.1x faster steps on Home Depot; 1 = off)")
    p.add_argument("--mask-similar-pins", type=float, default=None, metavar="COSINE",
                   help="mask negatives whose pin has cosine > COSINE with the row's positive pin "
                   "(near-duplicate products; default off)")
    p.add_argument("--pseudo-queries", type=int, default=0,
                   help="query augmentation: this many extra rows per step, each a query-like cut of a "
                   "random pin's own text (default 0 = off)")
    p.add_argument("--pseudo-query-weight", type=float, default=0.5, help="loss weight of a pseudo-query row")
    p.add_argument("--pseudo-query-variants", action="store_true",
                   help="vary pseudo-queries like real ones: plural forms, words cut short, and context words "
                   "learned from the training pairs (e.g. 'bathroom' for vanities)")
    p.add_argument("--interpolate-start", type=float, default=1.0, metavar="ALPHA",
                   help="save ALPHA x trained + (1 - ALPHA) x starting weights (WiSE-FT; Home Depot: 0.9 helped "
                   "the 2.4-epoch runs, hurt the 4-epoch one); default 1 = the trained weights")
    p.add_argument("--mask-pseudo-query-matches", action="store_true",
                   help="in a pseudo-query's softmax row, mask the other pins whose text holds all words of "
                   "its cut (false negatives: 'wall mount' fits hundreds of titles)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="bf16: the tower's forward pass under CPU bfloat16 autocast (weights, optimizer and loss "
                   "stay float32); Home Depot steps 1.75 s -> 1.27 s on a CPU with native bfloat16")
    p.add_argument("--hold-out-validation", action="store_true",
                   help="also keep the validation queries (md5 %% 10 == 1, ~10%%) out of training, to choose "
                   "settings on them rather than on the eval split")
    p.add_argument("--average-last", type=float, default=0.0, metavar="FRACTION",
                   help="also save the average of the weights over the last FRACTION of training "
                   "(tail averaging) as a second tower in OUT/average/ (default 0 = off)")
    p.add_argument("--max-minutes", type=float, default=None, help="time budget; stops cleanly when spent")
    p.add_argument("--max-steps", type=int, default=None, help="step budget")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from encoders.cli_support import CLIError
    from encoders.train.config import TrainConfig
    from encoders.train.trainer import TrainDataError, train

    for name in ("epochs", "batch_size", "lr", "readout_lr", "temperature", "threads"):
        if getattr(args, name) <= 0:
            raise CLIError(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.length_buckets < 1:
        raise CLIError(f"--length-buckets must be >= 1, got {args.length_buckets}")
    if args.batch_size < 2:
        raise CLIError(f"--batch-size must be >= 2 (in-batch negatives), got {args.batch_size}")
    if not 0.0 <= args.interpolate_start <= 1.0:
        raise CLIError(f"--interpolate-start must be in [0, 1], got {args.interpolate_start}")
    if not 0.0 <= args.average_last < 1.0:
        raise CLIError(f"--average-last must be in [0, 1), got {args.average_last}")
    config = TrainConfig(
        data=args.data, out=args.out, base_model=args.base_model, pooling=args.pooling, max_length=args.max_length,
        train_layers=args.train_layers,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, readout_lr=args.readout_lr,
        temperature=args.temperature, learn_temperature=args.learn_temperature,
        max_per_pin=args.max_per_pin or None, task_weights=args.task_weights,
        hard_negatives=args.hard_negatives, hard_negative_source=args.hard_negative_source,
        hard_negative_window=args.hard_negative_window,
        hard_negative_cache=args.hard_negative_cache, random_negatives=args.random_negatives,
        queue_size=args.queue_size, extra_positive_grade=args.extra_positive_grade,
        extra_positive_weight=args.extra_positive_weight, length_buckets=args.length_buckets,
        mask_similar_pins=args.mask_similar_pins, pseudo_queries=args.pseudo_queries,
        pseudo_query_weight=args.pseudo_query_weight, pseudo_query_variants=args.pseudo_query_variants,
        mask_pseudo_query_matches=args.mask_pseudo_query_matches, interpolate_start=args.interpolate_start,
        precision=args.precision, hold_out_validation=args.hold_out_validation,
        average_last=args.average_last, max_minutes=args.max_minutes, max_steps=args.max_steps,
        threads=args.threads, seed=args.seed, resume=args.resume, progress=not args.no_progress,
    )
    try:
        result = train(config)
    except (TrainDataError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    print(
        f"trained {result.steps} steps ({result.epochs:.2f} epochs) in {result.wall_time_s:.0f} s, "
        f"final loss {result.final_loss:.4f}, temperature {result.temperature:.4f}, stopped by {result.stopped_by} "
        f"→ {result.run_dir}"
    )
    return 0
