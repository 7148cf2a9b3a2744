"""The dataclass-to-flags generator: each option declared once, on its config field, and the flags of
``searchsage serve``/``encode``/``export`` built from it with the dataclass's own defaults."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from encoders.cli_support import CLIError, add_config_options, config_from_args, config_values


@dataclass
class _Inner:
    limit: float = field(default=0.5, metadata={"help": "a limit (default {default})"})
    hidden: bool = field(default=True, metadata={"flag": None})


@dataclass
class _Options:
    source: Path = field(metadata={"help": "where from"})
    fuse: bool = field(default=True, metadata={"flag": "--no-fuse", "help": "do not fuse"})
    both: bool = field(default=True, metadata={"help": "a two-way switch"})
    inner: _Inner = field(default_factory=_Inner)
    wait_ms: float = field(default=0.0, metadata={"help": "wait (default %(default)s ms, 10% of it idle)"})
    level: str = field(default="warning", metadata={"help": None, "choices": ("warning", "debug")})

    def __post_init__(self) -> None:
        if self.wait_ms < 0:
            raise ValueError("wait_ms must be >= 0")


def _parser(**kwargs: object) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t")
    add_config_options(p, _Options, **kwargs)
    return p


def test_required_negated_nested_and_argparse_defaults() -> None:
    p = _parser()
    with pytest.raises(SystemExit):
        p.parse_args([])  # --source is required: it has no default
    args = p.parse_args(["--source", "s"])
    assert config_from_args(_Options, args) == _Options(source=Path("s"))
    args = p.parse_args(["--source", "s", "--no-fuse", "--no-both", "--limit", "2", "--wait-ms", "3"])
    assert config_from_args(_Options, args) == _Options(Path("s"), fuse=False, both=False, inner=_Inner(limit=2.0),
                                                        wait_ms=3.0)
    text = p.format_help()
    assert "--no-fuse" in text and "--fuse " not in text and "--both, --no-both" in text
    assert "a limit (default 0.5)" in text and "--hidden" not in text
    assert "wait (default 0.0 ms, 10% of it idle)" in text
    with pytest.raises(CLIError, match="wait-ms must be >= 0"):
        config_from_args(_Options, p.parse_args(["--source", "s", "--wait-ms", "-1"]))


def test_only_and_skip_pick_fields_for_groups() -> None:
    p = argparse.ArgumentParser(prog="t")
    add_config_options(p, _Options, only=("source",))
    add_config_options(p.add_mutually_exclusive_group(), _Options, only=("fuse", "both"))
    add_config_options(p, _Options, skip=("source", "fuse", "both"))
    assert [a.dest for a in p._actions if a.dest != "help"] == ["source", "fuse", "both", "limit", "wait_ms", "level"]
    with pytest.raises(SystemExit):
        p.parse_args(["--source", "s", "--no-fuse", "--both"])  # one of the group only
    assert set(config_values(_Options, p.parse_args(["--source", "s"]))) == {
        "source", "fuse", "both", "inner", "wait_ms", "level"}


def _commands() -> argparse.ArgumentParser:
    from encoders.cli.main import build_parser

    return build_parser()


@pytest.mark.parametrize(("argv", "config"), [
    (["serve", "--bundle", "b"], "encoders.serving.config.ServeConfig"),
    (["encode", "--bundle", "b", "--kind", "query", "--input", "i", "--out", "o"], "encoders.runtime.config.EncodeConfig"),
    (["export", "--out", "o", "--pin-only"], "encoders.export.config.ExportOptions"),
])
def test_every_flag_default_is_the_config_default(argv: list[str], config: str) -> None:
    """No option has two defaults: the flags left out give exactly the dataclass's defaults."""
    import importlib

    module, _, name = config.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    args = _commands().parse_args(argv)
    required = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    assert cls(**config_values(cls, args)) == cls(**required)
