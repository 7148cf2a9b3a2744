"""``searchsage relevance ...``: train and export the teacher, label pairs, train the student, evaluate.

Each concern registers its own sub-commands; this module only builds the group.
"""

from __future__ import annotations

import argparse
import importlib

from encoders.cli_support import command_group

#: Modules that add ``searchsage relevance`` sub-commands (each exposes ``register(sub)``).
SUBCOMMAND_MODULES: tuple[str, ...] = (
    "encoders.cli.relevance_teacher_commands",
    "encoders.cli.relevance_student_commands",
    "encoders.cli.relevance_eval_commands",
)


def register(subparsers: argparse._SubParsersAction) -> None:
    sub = command_group(
        subparsers, "relevance",
        "relevance model: cross-encoder teacher on human judgments, distilled student ranker, evaluation",
    )
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
