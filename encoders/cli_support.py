"""What every ``searchsage`` command module shares: :class:`CLIError`, argument types, the
command-group pattern and the dataclass-to-flags generator.

It lives outside :mod:`encoders.cli` and imports nothing of the project at module level, so any
package's command module (``abtest.cli``, ``dashboard.cli``, ``encoders.cli.*``) can import it
without importing another package's CLI (and without an import loop through
:mod:`encoders.cli.main`, which loads the command modules by name).
"""

from __future__ import annotations

import argparse
from typing import Any


class CLIError(Exception):
    """A user-facing error: printed as ``searchsage: error: <message>``, exit status 2."""


def positive_int(text: str) -> int:
    """``argparse`` type: an integer >= 1, with a clear message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def command_group(subparsers: Any, name: str, help: str) -> Any:
    """Add a command group (``searchsage NAME SUBCOMMAND``) that prints its help when called bare.

    Returns the group's sub-parsers, to which the sub-commands are added.
    """
    group = subparsers.add_parser(name, help=help, description=help)
    sub = group.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
    group.set_defaults(func=lambda _args: group.print_help() or 2)
    return sub


def add_pin_feedback_options(parser: argparse.ArgumentParser, context: str) -> None:
    """``--prf-k`` / ``--prf-weight`` (defaults: :class:`encoders.runtime.pin_feedback.PinFeedback`'s);
    ``context`` says when they apply (e.g. ``"with --pin-feedback"``)."""
    from encoders.runtime.pin_feedback import PinFeedback

    parser.add_argument("--prf-k", type=int, default=PinFeedback.k,
                        help=f"{context}: top pins averaged into each query (default {PinFeedback.k}, chosen on "
                        "the validation split)")
    parser.add_argument("--prf-weight", type=float, default=PinFeedback.weight,
                        help=f"{context}: weight of their mean against the query (default {PinFeedback.weight:g}; "
                        "0 = off)")


def pin_feedback_from_args(args: argparse.Namespace) -> Any:  # -> PinFeedback
    """The :class:`~encoders.runtime.pin_feedback.PinFeedback` of ``--prf-k``/``--prf-weight``; a CLIError
    naming both flags when they are out of range."""
    from encoders.runtime.pin_feedback import PinFeedback

    try:
        return PinFeedback(k=args.prf_k, weight=args.prf_weight)
    except ValueError as exc:
        raise CLIError(f"--prf-k/--prf-weight: {exc}") from None


def _show_default(value: Any) -> str:
    """A default as a help text shows it: ``10,100`` for a tuple, ``5e-5`` / ``2`` for a float."""
    import re

    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):  # the shorter of 0.001 and 1e-3 that reads back as the value
        forms = [f"{value:g}", re.sub(r"\.?0*e([+-])0*(\d)", lambda m: "e" + m.group(1).lstrip("+") + m.group(2),
                                      f"{value:e}")]
        return min((f for f in forms if float(f) == value), key=len, default=forms[0])
    return str(value)


def _user_type(parse: Any) -> Any:
    """``parse`` as an ``argparse`` type: its ValueError message becomes the flag's error message."""

    def wrapped(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    wrapped.__name__ = getattr(parse, "__name__", "value")
    return wrapped


def _field_hints(config_cls: Any) -> dict[str, Any]:
    import typing

    return typing.get_type_hints(config_cls)


def _nested(hint: Any) -> Any | None:
    """The dataclass a field holds (its flags are the nested class's own), else None."""
    import dataclasses

    return hint if isinstance(hint, type) and dataclasses.is_dataclass(hint) else None


def add_config_options(parser: Any, config_cls: Any, helps: dict[str, str] | None = None,
                       skip: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> None:
    """One ``--flag`` per field of the dataclass ``config_cls`` (default taken from the dataclass, so
    it is declared once): ``--max-length`` for ``max_length``; ``Literal`` fields become choices; a
    ``bool`` field defaulting to False is a switch (``store_true``), one defaulting to True gets
    ``--x/--no-x``, or only the switch that turns it off when its ``"flag"`` is ``--no-...``
    (``store_false``). A field without a default is a required flag; a field holding a dataclass
    (e.g. ``ExportOptions.thresholds``) adds that dataclass's flags in its place.

    Help: ``helps[name]`` with the default appended, else the field's ``metadata["help"]`` as written,
    where ``{default}`` stands for the default as :func:`_show_default` writes it and argparse's
    ``%(default)s`` for ``str(default)`` (``None``: no help text). Other ``metadata`` keys: ``"flag"``
    (the flag's name when it is not the field's; None = no flag), ``"choices"``, ``"type"`` (a parser
    of the text, whose ValueError message is the error shown) and ``"metavar"``. Fields in ``skip``
    get no flag; with ``only``, only those fields do. ``parser`` may be a parser or a group of one
    (e.g. a mutually exclusive group).
    """
    import dataclasses
    import typing
    from pathlib import Path

    helps = helps or {}
    hints = _field_hints(config_cls)
    for f in dataclasses.fields(config_cls):
        flag = f.metadata.get("flag", "--" + f.name.replace("_", "-"))
        if f.name in skip or flag is None or (only is not None and f.name not in only):
            continue
        hint = hints[f.name]
        if (nested := _nested(hint)) is not None:
            add_config_options(parser, nested, helps, skip)
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        default = None if required else (f.default if f.default is not dataclasses.MISSING else f.default_factory())
        if f.name in helps or "help" not in f.metadata:
            help_text = f"{helps.get(f.name, f.name)} (default {default})"
        elif f.metadata["help"] is None:
            help_text = None
        else:
            help_text = (f.metadata["help"].replace("%", "%%").replace("%%(default)s", "%(default)s")
                         .replace("{default}", _show_default(default)))
        kwargs: dict[str, Any] = {"dest": f.name, "help": help_text}
        if required:
            kwargs["required"] = True
        else:
            kwargs["default"] = default
        choices = f.metadata.get("choices")
        if choices is None and typing.get_origin(hint) is typing.Literal:
            choices = typing.get_args(hint)
        base = next((t for t in (typing.get_args(hint) or (hint,)) if t is not type(None)), str)
        if "metavar" in f.metadata:
            kwargs["metavar"] = f.metadata["metavar"]
        if choices:
            kwargs["choices"] = choices
        elif isinstance(default, bool):
            if default is False:
                kwargs["action"] = "store_true"
            else:
                kwargs["action"] = "store_false" if flag.startswith("--no-") else argparse.BooleanOptionalAction
        elif "type" in f.metadata:
            kwargs["type"] = _user_type(f.metadata["type"])
        else:
            kwargs["type"] = base if base in (int, float, str, Path) else str
        parser.add_argument(flag, **kwargs)


def config_values(config_cls: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``config_cls`` that :func:`add_config_options` put into ``args``
    (a field holding a dataclass gets that dataclass, built the same way, when any of its flags is there)."""
    import dataclasses

    hints = _field_hints(config_cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(config_cls):
        if (nested := _nested(hints[f.name])) is not None:
            inner = config_values(nested, args)
            if inner:
                values[f.name] = nested(**inner)
        elif hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    return values


def config_from_args(config_cls: Any, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``config_cls`` from the flags :func:`add_config_options` added; a CLIError naming the
    option when ``__post_init__`` rejects a value."""
    try:
        return config_cls(**{**config_values(config_cls, args), **overrides})
    except ValueError as exc:
        raise CLIError(str(exc).replace("_", "-")) from None
