"""``searchsage``: one console script, sub-commands registered by each package.

Each module in :data:`COMMAND_MODULES` exposes ``register(subparsers) -> None`` and sets
``func=<callable(args) -> int>`` on the parsers it adds. User mistakes raise
:class:`CLIError` (or a ``ValueError``/``FileNotFoundError`` subclass of ours) and are printed as
one clear line with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from encoders.cli_support import CLIError  # re-exported: command modules raise it

#: Modules that add sub-commands, in the order they appear in ``--help``.
COMMAND_MODULES: tuple[str, ...] = (
    "encoders.cli.data_commands",
    "encoders.cli.export_commands",
    "encoders.cli.serve_commands",
    "encoders.cli.train_commands",
    "encoders.cli.eval_commands",
    "encoders.cli.relevance_commands",
    "abtest.cli",
    "dashboard.cli",
    "encoders.cli.feast_commands",
    "encoders.cli.demo_commands",
    "encoders.cli.homefeed_commands",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="searchsage",
        description="SearchSage: learn query embeddings in a frozen pin space, serve them through "
        "Feast + Redis, and measure the effect with A/B statistics.",
    )
    from encoders import __version__

    parser.add_argument("--version", action="version", version=f"searchsage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if not argv and argv is not None else 2
    from encoders.data.schema import DataValidationError
    from encoders.model.base_model import BaseModelNotFound

    user_errors: tuple[type[BaseException], ...] = (CLIError, DataValidationError, BaseModelNotFound, importlib.import_module("encoders.eval.evalset").EvalInputError)
    try:
        return int(func(args) or 0)
    except user_errors as exc:
        print(f"searchsage: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("searchsage: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
