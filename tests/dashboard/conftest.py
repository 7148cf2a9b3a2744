"""Session fixtures for the dashboard tests: real A/B result directories, a tiny bundle, a pins table.

Everything is produced by the project's own pipeline at small size: a synthetic dataset
(``small`` preset), the tiny untrained tower of ``tiny_onnx_bundle`` (pins embedded by its pin
tower), ``searchsage evaluate`` for the model card, and ``searchsage abtest simulate`` +
``searchsage abtest analyze`` for two experiments — one healthy, one with an injected SRM — and a homefeed
evaluation (``searchsage homefeed generate|train --ablations|evaluate`` at tiny size) for the Homefeed page.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from dash_fixtures import HEALTHY, SRM, DashEnv, run_cli


@pytest.fixture(scope="session")
def dash_env(tiny_bert_dir: Path, tiny_onnx_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> DashEnv:
    import pyarrow as pa

    from encoders.data.schema import PINS, read_table, write_table
    from encoders.data.synthetic import PRESETS, generate_synthetic
    from encoders.eval.report import evaluate
    from encoders.model.tower import QueryTower, TowerConfig
    from encoders.runtime import BundleEncoder

    root = tmp_path_factory.mktemp("dash")
    small = PRESETS["small"]
    data = generate_synthetic(root / "data", n_pins=small.n_pins, n_queries=small.n_queries,
                              n_engagements=small.n_engagements).root
    # the same untrained tower tests/conftest.py exports into ``tiny_onnx_bundle`` (copied: that one is shared)
    run = root / "run"
    QueryTower(TowerConfig(str(tiny_bert_dir), max_length=16)).save(run)
    bundle = root / "bundle"
    shutil.copytree(tiny_onnx_bundle, bundle)
    pins = read_table(data / "pins.parquet", PINS)
    emb = BundleEncoder(bundle, kind="pin", threads=1).encode(pins.column("text").to_pylist())  # (500, 32)
    write_table(pins.append_column("embedding", pa.array(list(emb), type=pa.list_(pa.float32()))),
                data / "pins.parquet", PINS)
    evaluate(data, run_dir=run, systems=["bm25", "zero_shot", "searchsage"], base_model=tiny_bert_dir,
             k=(10, 100), bootstrap_reps=200)
    shutil.copyfile(run / "eval_report.json", bundle / "eval_report.json")  # what `searchsage export` copies
    results = root / "results"
    logs = {HEALTHY: root / "logs_healthy", SRM: root / "logs_srm"}
    run_cli("abtest", "simulate", "--data", str(data), "--out", str(logs[HEALTHY]), "--users", "2000", "--days", "6",
         "--pre-days", "3", "--effect", "0.03", "--experiment", HEALTHY, "--seed", "0")
    run_cli("abtest", "analyze", str(logs[HEALTHY]), "--control", "control", "--out", str(results))
    run_cli("abtest", "simulate", "--data", str(data), "--out", str(logs[SRM]), "--users", "1500", "--days", "4",
         "--pre-days", "2", "--srm", "0.15", "--experiment", SRM, "--seed", "1")
    run_cli("abtest", "analyze", str(logs[SRM]), "--control", "control", "--out", str(results), "--allow-srm")
    hf = root / "homefeed"
    run_cli("homefeed", "generate", "--out", str(hf / "data"), "--n-users", "150", "--n-pins", "400", "--days", "40",
            "--events-per-user", "25", "--pin-embeddings", "structured", "--structured-dim", "16", "--no-progress")
    run_cli("homefeed", "train", "--data", str(hf / "data"), "--out", str(hf / "run"), "--ablations", "--eval-days", "8",
            "--history", "8", "--hidden", "32", "--id-dim", "16", "--batch-size", "64", "--random-negatives", "64",
            "--max-steps", "10", "--threads", "1", "--no-progress")
    run_cli("homefeed", "evaluate", "--data", str(hf / "data"), "--run", str(hf / "run"), "--out", str(hf / "eval"),
            "--bootstrap-reps", "100", "--threads", "1", "--no-progress")
    return DashEnv(data=data, run=run, bundle=bundle, results=results, logs=logs, homefeed=hf / "eval")
