"""End to end: ``searchsage demo --small`` runs every stage for real (tiny BERT as the base model,
a real redis-server, the real feast CLI, onnxruntime, the A/B pipeline) and is safe to re-run."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis

from encoders.cli.main import main

pytestmark = pytest.mark.slow


def test_demo_small_runs_end_to_end_and_reruns(tmp_path: Path, tiny_bert_dir: Path, redis_server,
                                                monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("SEARCHSAGE_REDIS", f"{redis_server.connection_string},db=11")
    raw = redis.Redis(host=redis_server.host, port=redis_server.port, db=11)
    raw.flushdb()
    work = tmp_path / "demo"
    args = ["demo", "--small", "--workdir", str(work), "--base-model", str(tiny_bert_dir), "--users", "600"]
    assert main(args) == 0
    summary = json.loads((work / "summary.json").read_text())
    assert summary["online_store"] == "redis"

    # every stage left its artefact
    report = json.loads((work / "run" / "eval_report.json").read_text())
    assert {s["name"] for s in report["systems"]} >= {"bm25", "zero_shot", "searchsage"}
    manifest = json.loads((work / "bundle" / "query" / "manifest.json").read_text())
    assert manifest["dim"] == 32
    n_pins = pq.read_metadata(work / "data" / "pins.parquet").num_rows
    n_queries = len(set(pq.read_table(work / "data" / "engagements.parquet", columns=["query"]).column("query").to_pylist()))
    assert raw.dbsize() == n_pins + n_queries  # one Redis record per pin and per distinct query
    exp = json.loads(next((work / "results").glob("*/summary.json")).read_text())
    assert exp["srm"]["passed"] is True
    out = capsys.readouterr().out
    assert "searchsage dashboard --results" in out

    # re-running is safe: finished steps are reused, materialisation overwrites (no duplicates)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "already done" in out
    assert raw.dbsize() == n_pins + n_queries


def test_demo_rejects_missing_data_path(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--data", str(tmp_path / "nope.csv"), "--workdir", str(tmp_path / "w")]) == 2
    assert "nope.csv does not exist" in capsys.readouterr().err
