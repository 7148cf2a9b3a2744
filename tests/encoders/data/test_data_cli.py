"""``searchsage data`` / ``searchsage pins``: help on every command and an end-to-end run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encoders.cli.main import main

COMMANDS = (["data"], ["data", "synth"], ["data", "import-homedepot"], ["data", "validate"], ["pins"],
            ["pins", "embed"])


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_help(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    assert f"searchsage {' '.join(argv)}" in capsys.readouterr().out


def test_synth_validate_embed_end_to_end(tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo"
    assert main(["data", "synth", "--out", str(out), "--preset", "small", "--pins", "300", "--queries", "60"]) == 0
    printed = capsys.readouterr().out
    assert "pins:        300" in printed and "engagements: 1,200" in printed
    assert main(["pins", "embed", str(out), "--base-model", str(tiny_bert_dir), "--threads", "1"]) == 0
    assert json.loads((out / "pin_tower.json").read_text())["dim"] == 32
    assert main(["data", "validate", str(out)]) == 0
    assert "embeddings D=32" in capsys.readouterr().out
    # regenerating the same catalogue with more engagements keeps the cached pin embeddings
    synth = ["data", "synth", "--out", str(out), "--preset", "small", "--pins", "300", "--queries", "60"]
    assert main([*synth, "--engagements", "2000"]) == 0
    assert "embeddings D=32" in capsys.readouterr().out
    # a different catalogue (other seed) drops them: they would not match the new texts
    assert main([*synth, "--seed", "3"]) == 0
    assert "no embeddings yet" in capsys.readouterr().out
    assert not (out / "pin_tower.json").exists()  # no stale description of embeddings that are gone


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "import-homedepot", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchsage: error: file ") and "missing.csv" in err and "Traceback" not in err
    assert main(["data", "validate", str(tmp_path / "nothing")]) == 2
    assert "dataset directory not found" in capsys.readouterr().err
    assert main(["pins", "embed", str(tmp_path)]) == 2
    assert "no pins.parquet" in capsys.readouterr().err
