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
    n_users = len(set(pq.read_table(work / "homefeed" / "data" / "events.parquet", columns=["user_id"])
                      .column("user_id").to_pylist()))
    # one Redis record per pin, per distinct query and per homefeed user
    assert raw.dbsize() == n_pins + n_queries + n_users
    exp = json.loads(next((work / "results").glob("*/summary.json")).read_text())
    assert exp["srm"]["passed"] is True
    out = capsys.readouterr().out
    assert "searchsage dashboard --results" in out
    _check_homefeed(work, summary, out, n_users, monkeypatch)

    # re-running is safe: finished steps are reused, materialisation overwrites (no duplicates)
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "already done" in out
    assert "homefeed: synthetic users engaging with the demo's pins: already done" in out
    assert "homefeed: train the user tower and its two ablations: already done" in out
    assert raw.dbsize() == n_pins + n_queries + n_users


def _check_homefeed(work: Path, summary: dict, out: str, n_users: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The homefeed part: over the demo's own pins, evaluated with ablations, materialised by the user bundle."""
    import numpy as np
    from feast import FeatureStore

    from encoders.homefeed.dataset import load_homefeed
    from encoders.homefeed.onnx_scorer import OnnxUserScorer
    from encoders.redis_records.embeddings import EmbeddingStore

    hf = summary["homefeed"]
    assert hf["users"] == n_users == 300 and hf["eval_users"] > 100
    assert set(hf["recall_at_10"]) == {"tower", "no_id_embeddings", "no_feature_crossing", "mean_recent", "popularity"}
    assert set(hf["tower_minus_baseline_recall_at_10"]) == {"no_id_embeddings", "no_feature_crossing", "mean_recent",
                                                            "popularity"}
    report = json.loads(Path(hf["eval_report"]).read_text())
    assert hf["recall_at_10"]["tower"] == round(report["systems"]["tower"]["all"]["overall"]["10"], 4)
    assert 0 < hf["seconds"] < summary["seconds"]
    manifest = json.loads((work / "homefeed" / "bundle" / "manifest.json").read_text())
    assert manifest["kind"] == "homefeed_user" and manifest["dim"] == 32  # the demo's (tiny BERT) pin space
    demo_pins = pq.read_table(work / "data" / "pins.parquet", columns=["pin_id", "embedding"])
    hf_pins = pq.read_table(work / "homefeed" / "data" / "pins.parquet", columns=["pin_id", "embedding"])
    assert hf_pins.equals(demo_pins)  # homefeed ran over the demo's own pins and their frozen vectors
    assert f"--homefeed {work / 'homefeed' / 'run' / 'eval'}" in summary["dashboard_command"]
    # every user's stored vector is the exported tower's, as of the user's latest event
    monkeypatch.setenv("SEARCHSAGE_REDIS", summary["redis"])  # the test's database 11, as the demo used it
    monkeypatch.setenv("SEARCHSAGE_EMBEDDING_DIM", "32")
    store = FeatureStore(repo_path=summary["feature_repo"])
    users = pq.read_table(work / "feature_repo" / "data" / "users.parquet").to_pandas()
    latest = users.groupby("user_id")["event_timestamp"].max()
    stored, found = EmbeddingStore.from_store(store, "user_embedding").fetch(latest.index.tolist())
    assert found.all()
    scorer = OnnxUserScorer(work / "homefeed" / "bundle")
    data = load_homefeed(work / "feature_repo" / "data" / "homefeed")
    index = {u: i for i, u in enumerate(data.log.user_ids)}
    want = np.stack([scorer.embed_users(data, np.array([index[u]]), t.timestamp() / 86_400 + 1e-6)[0]
                     for u, t in latest.items()])
    np.testing.assert_allclose(stored, want, atol=1e-5)
    # the rank --user example printed its ten pins
    user = hf["rank_user"]
    assert f"user: {user!r} (homefeed vector from the store" in out
    block = out.split(f"user: {user!r}")[1].splitlines()[1:11]
    assert all(line.split()[2].startswith("p") for line in block) and len(block) == 10


def test_demo_rejects_missing_data_path(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--data", str(tmp_path / "nope.csv"), "--workdir", str(tmp_path / "w")]) == 2
    assert "nope.csv does not exist" in capsys.readouterr().err
