"""The demo's homefeed plan (pure): when it runs, the commands it prints, and that they parse as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from encoders.cli.main import build_parser
from encoders.demo.homefeed import PREFIX, SMALL, STEPS, build_homefeed_plan, homefeed_catalogue, ingest_step
from encoders.demo.plan import DemoConfig


def test_homefeed_runs_only_over_a_synthetic_catalogue(tmp_path: Path) -> None:
    cfg = DemoConfig(workdir=tmp_path / "demo", small=True)
    assert homefeed_catalogue(cfg) is None  # no dataset yet
    cfg.dataset_dir.mkdir(parents=True)
    (cfg.dataset_dir / "dataset.json").write_text(json.dumps({"kind": "synthetic", "config": {"n_pins": 500, "seed": 3}}))
    assert homefeed_catalogue(cfg) == (500, 3)
    (cfg.dataset_dir / "dataset.json").write_text(json.dumps({"kind": "homedepot", "pins": 10}))
    assert homefeed_catalogue(cfg) is None


def test_plan_steps_are_real_commands_at_small_size(tmp_path: Path) -> None:
    cfg = DemoConfig(workdir=tmp_path / "demo", small=True)
    steps = [*build_homefeed_plan(cfg, 500, 0), ingest_step(cfg)]
    assert len(steps) == STEPS - 2 and all(s.title.startswith(PREFIX) for s in steps)
    parser = build_parser()
    for s in steps:
        assert s.kind == "searchsage"
        parser.parse_args(s.args)  # every printed command parses as written
    gen, train, evaluate, export, ingest = (s.args for s in steps)
    assert gen[gen.index("--pins-from") + 1] == str(cfg.dataset_dir) and gen[gen.index("--n-users") + 1] == str(SMALL.users)
    assert "--ablations" in train and train[train.index("--threads") + 1] == "1"
    assert evaluate[evaluate.index("--out") + 1] == str(cfg.homefeed_eval)
    assert export[export.index("--out") + 1] == str(cfg.homefeed_bundle)
    assert ingest[-2:] == ["--homefeed", str(cfg.homefeed_data)]
    assert steps[0].skip_if_exists == cfg.homefeed_data / "homefeed_dataset.json"
    assert build_homefeed_plan(DemoConfig(workdir=tmp_path, retrain=True), 500, 0)[1].skip_if_exists is None


def test_generate_refuses_pins_of_another_catalogue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.cli.main import main

    assert main(["data", "synth", "--out", str(tmp_path / "ds"), "--preset", "small"]) == 0
    args = ["homefeed", "generate", "--out", str(tmp_path / "hf"), "--pins-from", str(tmp_path / "ds"),
            "--n-users", "5", "--no-progress"]
    assert main([*args, "--n-pins", "500"]) == 2
    assert "has no embedding column (run `searchsage pins embed` first)" in capsys.readouterr().err
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pins = pq.read_table(tmp_path / "ds" / "pins.parquet")
    vectors = np.eye(8, dtype=np.float32)[np.arange(pins.num_rows) % 8]
    pq.write_table(pins.append_column("embedding", pa.array(list(vectors), pa.list_(pa.float32()))),
                   tmp_path / "ds" / "pins.parquet")
    assert main([*args, "--n-pins", "400"]) == 2
    assert "are not the synthetic catalogue of --n-pins 400" in capsys.readouterr().err
    assert main([*args, "--n-pins", "500"]) == 0
    copied = pq.read_table(tmp_path / "hf" / "pins.parquet")
    assert copied.column("embedding").equals(pq.read_table(tmp_path / "ds" / "pins.parquet").column("embedding"))
