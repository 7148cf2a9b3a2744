"""``searchsage train``: fine-tune the query tower into the frozen pin space of a dataset.

The training options' flags are generated from :class:`encoders.train.config.TrainConfig` (each
option's default, help, type and checks are declared there, once); only the flags that are not
options of a run's training (``--data``, ``--out``, ``--resume``, ``--no-progress``) are declared here.
"""

from __future__ import annotations

import argparse

#: TrainConfig fields with a flag of their own below (required, or worded as the command line needs).
_EXPLICIT = ("data", "out", "resume", "progress")


def register(subparsers: argparse._SubParsersAction) -> None:
    from encoders.cli_support import add_config_options
    from encoders.train.config import TrainConfig

    p = subparsers.add_parser(
        "train",
        help="train the query tower against frozen pin embeddings",
        description="Fine-tune the query tower (pretrained Transformer + pooling + linear readout) so that "
        "query embeddings land in the frozen pin space of DATA/pins.parquet:embedding. Softmax over "
        "in-batch positives plus optional hard/random/queued negatives. Writes a run directory "
        "(tower, checkpoint.pt, train_log.jsonl, train_summary.json).",
    )
    help_of = {f: TrainConfig.__dataclass_fields__[f].metadata["help"] for f in _EXPLICIT}
    p.add_argument("--data", required=True, help=help_of["data"])
    p.add_argument("--out", required=True, help=help_of["out"])
    add_config_options(p, TrainConfig, skip=_EXPLICIT)
    p.add_argument("--resume", action="store_true", help=help_of["resume"])
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    from encoders.cli_support import CLIError, config_from_args
    from encoders.train.config import TrainConfig
    from encoders.train.trainer import TrainDataError, train

    config = config_from_args(TrainConfig, args, progress=not args.no_progress)
    try:
        result = train(config)
    except (TrainDataError, ValueError) as exc:
        raise CLIError(str(exc)) from None
    if result.rank != 0:  # under torchrun only rank 0 reports
        return 0
    print(
        f"trained {result.steps} steps ({result.epochs:.2f} epochs) in {result.wall_time_s:.0f} s, "
        f"final loss {result.final_loss:.4f}, temperature {result.temperature:.4f}, stopped by {result.stopped_by} "
        f"→ {result.run_dir}"
    )
    return 0
