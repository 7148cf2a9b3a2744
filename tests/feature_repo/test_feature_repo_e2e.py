"""End to end: the real ``feast`` CLI applies and materialises feature_repo/ into a real redis-server,
with the tiny ONNX bundle running inside materialisation; stock reads, fast reads, the live ODFV,
the rank CLI and error paths are checked against it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from encoders.featurestore.sources import append_pins, append_queries

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow
FEAST = str(Path(sys.executable).with_name("feast"))
DB = 7  # a database of the shared redis fixture that no other test module flushes
QUERIES = ["Red Chair", "oak  TABLE", "brass lamp", "garden hose", "red chair"]  # last two normalise equal
PINS = {"p1": "red chair wood", "p2": "oak table large", "p3": "brass lamp small", "p4": "garden hose green",
        "p5": "steel shelf rack"}


def _feast(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEAST, "-c", str(repo), *args], env=env, capture_output=True, text=True, timeout=240)


@pytest.fixture(scope="module")
def fs_env(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_bundle: Path, redis_server) -> dict:
    dim = json.loads((tiny_onnx_bundle / "query" / "manifest.json").read_text())["dim"]
    repo = tmp_path_factory.mktemp("fs") / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("registry.db", "pin_index.*", "*.parquet"))
    t0 = datetime.now(timezone.utc) - timedelta(hours=2)
    append_queries(repo, QUERIES, t0)
    append_pins(repo, list(PINS), list(PINS.values()), t0)
    env = {**os.environ, "SEARCHSAGE_REDIS": f"{redis_server.connection_string},db={DB}",
           "SEARCHSAGE_BUNDLE": str(tiny_onnx_bundle), "SEARCHSAGE_EMBEDDING_DIM": str(dim)}
    import redis

    raw = redis.Redis(host=redis_server.host, port=redis_server.port, db=DB)
    raw.flushdb()
    applied = _feast(repo, env, "apply")
    assert applied.returncode == 0, applied.stderr[-3000:]
    mat = _feast(repo, env, "materialize-incremental", datetime.now(timezone.utc).isoformat())
    assert mat.returncode == 0, mat.stderr[-3000:]
    return {"repo": repo, "env": env, "dim": dim, "raw": raw, "bundle": tiny_onnx_bundle, "t0": t0}


@pytest.fixture()
def store(fs_env: dict, monkeypatch: pytest.MonkeyPatch):
    from feast import FeatureStore

    for k in ("SEARCHSAGE_REDIS", "SEARCHSAGE_BUNDLE", "SEARCHSAGE_EMBEDDING_DIM"):
        monkeypatch.setenv(k, fs_env["env"][k])
    return FeatureStore(repo_path=str(fs_env["repo"]))


def _keys() -> list[str]:
    from encoders.normalize import normalize_queries

    return sorted(set(normalize_queries(QUERIES)))


def test_materialise_runs_the_bundle_and_stock_feast_reads_it(fs_env: dict, store) -> None:
    from encoders.runtime import BundleEncoder

    keys = _keys()
    assert fs_env["raw"].dbsize() == len(keys) + len(PINS)  # duplicates after normalisation: one record
    got = store.get_online_features(features=["query_embedding:embedding", "query_embedding:model_version"],
                                    entity_rows=[{"query": k} for k in keys]).to_dict()
    enc = BundleEncoder(fs_env["bundle"], kind="query")
    expected = enc.encode(keys)
    stock = np.asarray(got["embedding"], dtype=np.float32)
    assert stock.shape == (len(keys), fs_env["dim"])
    np.testing.assert_allclose(stock, expected, atol=1e-5)
    assert set(got["model_version"]) == {enc.model_version}
    pins = store.get_online_features(features=["pin_embedding:embedding"],
                                     entity_rows=[{"pin_id": p} for p in PINS]).to_dict()
    pin_enc = BundleEncoder(fs_env["bundle"], kind="pin")
    np.testing.assert_allclose(np.asarray(pins["embedding"], dtype=np.float32), pin_enc.encode(list(PINS.values())),
                               atol=1e-5)


def test_fast_fetch_is_bit_identical_to_stock_and_masks_missing(fs_env: dict, store) -> None:
    from encoders.redis_records.embeddings import EmbeddingStore

    keys = [*_keys(), "never materialised"]
    stock = store.get_online_features(features=["query_embedding:embedding"],
                                      entity_rows=[{"query": k} for k in keys]).to_dict()["embedding"]
    assert stock[-1] is None
    fast = EmbeddingStore.from_store(store, "query_embedding")
    matrix, found = fast.fetch(keys)
    assert matrix.dtype == np.float32 and matrix.shape == (len(keys), fs_env["dim"])
    assert found.tolist() == [True] * (len(keys) - 1) + [False]
    assert matrix[:-1].tobytes() == np.asarray(stock[:-1], dtype=np.float32).tobytes()
    assert not matrix[-1].any()


def test_fast_write_is_read_back_exactly_by_stock(fs_env: dict, store) -> None:
    from encoders.redis_records.embeddings import EmbeddingStore

    fast = EmbeddingStore.from_config(store.config, store.get_feature_view("pin_embedding"))
    vecs = np.random.default_rng(1).standard_normal((3, fs_env["dim"]), dtype=np.float32)
    vecs[0, 0] = -0.0
    ids = ["w1", "w2", "w3"]
    fast.write(ids, vecs, model_version="hand-written", event_timestamp=datetime.now(timezone.utc))
    got = store.get_online_features(features=["pin_embedding:embedding", "pin_embedding:model_version"],
                                    entity_rows=[{"pin_id": p} for p in ids]).to_dict()
    assert np.asarray(got["embedding"], dtype=np.float32).tobytes() == vecs.tobytes()
    assert got["model_version"] == ["hand-written"] * 3
    fast.write(ids, vecs * 2, model_version="v2")  # overwrite, never duplicate
    again, found = fast.fetch(ids)
    assert found.all() and again.tobytes() == (vecs * 2).tobytes()
    fs_env["raw"].delete(*fast.redis_keys(ids))


def test_odfv_embeds_unseen_query_live_and_serves_stored_ones(fs_env: dict, store) -> None:
    from encoders.redis_records.embeddings import EmbeddingStore
    from encoders.runtime import BundleEncoder

    rows = [{"query": "red chair", "query_text": "Red Chair"},
            {"query": "blue copper faucet", "query_text": "Blue copper faucet"}]
    got = store.get_online_features(
        features=["query_vector:query_vector", "query_vector:query_vector_source",
                  "query_vector:query_vector_model_version"], entity_rows=rows).to_dict()
    assert got["query_vector_source"] == ["store", "live"]
    # the rankers' feature services give the same answer (the query service alone: no `embedding` clash)
    via_service = store.get_online_features(features=store.get_feature_service("ranker_query"),
                                            entity_rows=rows).to_dict()
    assert via_service["query_vector_source"] == ["store", "live"]
    pins = store.get_online_features(features=store.get_feature_service("ranker_pins"),
                                     entity_rows=[{"pin_id": "p1"}, {"pin_id": "nope"}]).to_dict()
    assert len(pins["embedding"][0]) == fs_env["dim"] and pins["embedding"][1] is None
    stored, _ = EmbeddingStore.from_store(store, "query_embedding").fetch(["red chair"])
    assert np.asarray(got["query_vector"][0], dtype=np.float32).tobytes() == stored[0].tobytes()
    enc = BundleEncoder(fs_env["bundle"], kind="query")
    np.testing.assert_allclose(np.asarray(got["query_vector"][1], dtype=np.float32),
                               enc.encode(["Blue copper faucet"])[0], atol=1e-6)
    assert got["query_vector_model_version"][1] == enc.model_version
    # The bundle is loaded once per process, not per request.
    from encoders.featurestore import udfs

    loads = udfs._load.cache_info().misses
    for q in ("another unseen one", "and a third"):
        store.get_online_features(features=["query_vector:query_vector"],
                                  entity_rows=[{"query": q, "query_text": q}]).to_dict()
    assert udfs._load.cache_info().misses == loads


def test_incremental_picks_new_rows_and_rerun_overwrites(fs_env: dict, store) -> None:
    from encoders.redis_records.embeddings import EmbeddingStore

    raw = fs_env["raw"]
    before = raw.dbsize()
    append_queries(fs_env["repo"], ["Steel  Bracket"], datetime.now(timezone.utc))  # logged after the last run
    store.materialize_incremental(end_date=datetime.now(timezone.utc) + timedelta(seconds=1))
    fast = EmbeddingStore.from_store(store, "query_embedding")
    m1, found = fast.fetch(["steel bracket"])
    assert found.all() and raw.dbsize() == before + 1
    # A full re-run (e.g. after a failure part-way) rewrites the same records, adds none.
    store.materialize(start_date=fs_env["t0"] - timedelta(days=1), end_date=datetime.now(timezone.utc))
    m2, found2 = fast.fetch(["steel bracket"])
    assert raw.dbsize() == before + 1 and found2.all() and m1.tobytes() == m2.tobytes()


def test_rank_cli_prints_scored_pins(fs_env: dict, store, capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.cli.main import main

    assert main(["rank", "Red Chair", "--repo", str(fs_env["repo"]), "--k", "3", "--candidates", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "vector from store" in lines[0]
    hits = [ln.split() for ln in lines[1:]]
    assert len(hits) == 3 and {h[2] for h in hits} <= set(PINS)
    scores = [float(h[1]) for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_unreachable_redis_is_a_clear_error(fs_env: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    from feast import FeatureStore

    from encoders.localredis.server import free_port
    from encoders.redis_records.connection import RedisUnavailable

    port = free_port()
    monkeypatch.setenv("SEARCHSAGE_REDIS", f"127.0.0.1:{port}")
    fs = FeatureStore(repo_path=str(fs_env["repo"]))
    with pytest.raises(RedisUnavailable, match=f"searchsage redis start --port {port}"):
        fs.get_online_features(features=["query_embedding:embedding"], entity_rows=[{"query": "x"}])
