"""``searchsage homefeed``: the commands end to end on tiny data, and user errors as one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from encoders.cli.homefeed_commands import register


def _main(argv: list[str]) -> int:
    """Run ``searchsage homefeed ...`` through its own parser and main's error handling."""
    import argparse

    from encoders.cli import main as cli_main

    parser = argparse.ArgumentParser(prog="searchsage")
    register(parser.add_subparsers(dest="command"))
    original = cli_main.build_parser
    cli_main.build_parser = lambda: parser  # only this command group: others may be mid-edit elsewhere
    try:
        return cli_main.main(argv)
    finally:
        cli_main.build_parser = original


def test_generate_train_evaluate_embed_export(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data, run = tmp_path / "data", tmp_path / "run"
    assert _main(["homefeed", "generate", "--out", str(data), "--n-users", "60", "--n-pins", "300",
                  "--events-per-user", "25", "--pin-embeddings", "structured", "--structured-dim", "8",
                  "--no-progress"]) == 0
    assert {"events.parquet", "user_interests.parquet", "pin_interests.parquet", "pins.parquet",
            "homefeed_dataset.json"} <= {p.name for p in data.iterdir()}
    assert _main(["homefeed", "train", "--data", str(data), "--out", str(run), "--max-steps", "4", "--batch-size",
                  "16", "--history", "4", "--hidden", "16", "--id-dim", "8", "--random-negatives", "8",
                  "--threads", "1", "--eval-days", "10", "--no-feature-crossing", "--no-progress"]) == 0
    assert json.loads((run / "tower_config.json").read_text())["feature_crossing"] is False
    assert _main(["homefeed", "evaluate", "--data", str(data), "--run", str(run), "--out", str(tmp_path / "ev"),
                  "--bootstrap-reps", "20", "--threads", "1", "--no-conditional", "--no-progress"]) == 0
    assert "conditional" not in json.loads((tmp_path / "ev" / "eval_report.json").read_text())
    out = tmp_path / "users.parquet"
    assert _main(["homefeed", "embed", "--data", str(data), "--run", str(run), "--out", str(out),
                  "--threads", "1"]) == 0
    table = pq.read_table(out)
    assert table.num_rows == 60 and len(table.column("embedding")[0]) == 8
    assert np.isclose(np.linalg.norm(table.column("embedding")[0].as_py()), 1.0, atol=1e-5)
    assert _main(["homefeed", "export", "--run", str(run), "--out", str(tmp_path / "bundle")]) == 0
    assert "parity max" in capsys.readouterr().out


def test_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main(["homefeed", "train", "--data", str(tmp_path), "--out", str(tmp_path / "r"),
                  "--id-dropout", "2"]) == 2
    assert "searchsage: error: --id-dropout must be in [0, 1], got 2.0" in capsys.readouterr().err
    assert _main(["homefeed", "train", "--data", str(tmp_path), "--out", str(tmp_path / "r")]) == 2
    assert "pins.parquet" in capsys.readouterr().err
    assert _main(["homefeed", "export", "--run", str(tmp_path), "--out", str(tmp_path / "b")]) == 2
    assert "no tower_config.json" in capsys.readouterr().err
    assert _main(["homefeed", "generate", "--out", str(tmp_path / "g"), "--n-users", "0"]) == 2
    assert "--n-users must be > 0" in capsys.readouterr().err
