"""Pins with their own frozen vectors, materialised without any bundle, and the ranker's ANN index:
built once per pin-embedding version, persisted, then each query is one query fetch, one index search
and one candidate fetch; a new materialisation is a new version."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.cli.main import main
from encoders.featurestore.sources import ingest_pins
from encoders.ranking import pin_index

ROOT = Path(__file__).resolve().parents[3]
DB, DIM, N = 13, 16, 300
pytestmark = pytest.mark.slow


def _write_pins(path: Path, ids: list[str], vecs: np.ndarray) -> Path:
    pq.write_table(pa.table({"pin_id": ids, "text": [f"pin {p}" for p in ids],
                             "embedding": pa.array(list(vecs), pa.list_(pa.float32()))}), path)
    return path


def _materialise(store) -> None:
    store.materialize(start_date=datetime.now(timezone.utc) - timedelta(days=1),
                      end_date=datetime.now(timezone.utc) + timedelta(seconds=1), feature_views=["pin_embedding"])


@pytest.fixture()
def env(feast_objects, tmp_path: Path, redis_server, monkeypatch: pytest.MonkeyPatch) -> dict:
    import redis
    from feast import FeatureStore

    monkeypatch.setenv("SEARCHSAGE_REDIS", f"{redis_server.connection_string},db={DB}")
    monkeypatch.setenv("SEARCHSAGE_EMBEDDING_DIM", str(DIM))
    monkeypatch.delenv("SEARCHSAGE_BUNDLE", raising=False)  # pins bring their vectors: no bundle anywhere
    redis.Redis(host=redis_server.host, port=redis_server.port, db=DB).flushdb()
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((N, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"sku-{i}" for i in range(N)]
    ingest_pins(repo, _write_pins(tmp_path / "pins.parquet", ids, vecs))
    store = FeatureStore(repo_path=str(repo))
    store.apply(feast_objects(repo, f"ss_rank_defs_{tmp_path.name}"))
    _materialise(store)
    return {"repo": repo, "store": store, "ids": ids, "vecs": vecs, "tmp": tmp_path}


def test_own_vectors_are_served_bit_identical(env: dict) -> None:
    from encoders.redis_records.embeddings import EmbeddingStore

    ids, vecs = env["ids"], env["vecs"]
    got = env["store"].get_online_features(features=["pin_embedding:embedding", "pin_embedding:model_version"],
                                           entity_rows=[{"pin_id": p} for p in ids]).to_dict()
    assert np.asarray(got["embedding"], dtype=np.float32).tobytes() == vecs.tobytes()
    assert set(got["model_version"]) == {"provided"}
    matrix, found = EmbeddingStore.from_store(env["store"], "pin_embedding").fetch(ids)
    assert found.all() and matrix.tobytes() == vecs.tobytes()


def test_index_is_built_once_per_version_and_queries_touch_only_their_rows(
    env: dict, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from encoders.ranking.ranker import Ranker
    from encoders.redis_records.embeddings import EmbeddingStore

    repo, store, ids, vecs = env["repo"], env["store"], env["ids"], env["vecs"]
    rng = np.random.default_rng(9)
    queries = {f"query {i}": (vecs[i * 7] + 0.3 * rng.standard_normal(DIM)).astype(np.float32) for i in range(5)}
    EmbeddingStore.from_config(store.config, store.get_feature_view("query_embedding")).write(
        list(queries), np.stack(list(queries.values())), model_version="q-test")

    ranker = Ranker(repo, store=store)
    calls: list[tuple[str, int]] = []
    for name, obj, meth in (("pins", ranker.pins, "fetch"), ("query", ranker.queries, "fetch_with_versions")):
        orig = getattr(obj, meth)
        monkeypatch.setattr(obj, meth, lambda keys, _o=orig, _n=name, **kw: calls.append((_n, len(keys))) or _o(keys, **kw))
    first = ranker.rank("query 0", k=5, candidates=20)
    assert ("pins", N) in calls  # the build: one scan of every source pin
    version_dir = repo / pin_index.INDEX_DIR / ranker.index().version
    assert (version_dir / "index.faiss").is_file() and (version_dir / "pins.parquet").is_file()
    for q, qv in queries.items():
        calls.clear()
        res = ranker.rank(q, k=5, candidates=20)
        assert calls == [("query", 1), ("pins", 20)]  # one query fetch, one candidate fetch, no rebuild
        exact = np.argsort(-(vecs @ qv))[:5]
        assert [h.pin_id for h in res.hits] == [ids[i] for i in exact]
        np.testing.assert_allclose([h.score for h in res.hits], (vecs @ qv)[exact], rtol=1e-5)
        assert res.vector_source == "store" and res.model_version == "q-test"
    assert first.hits[0].text == f"pin {first.hits[0].pin_id}"

    # another process: the persisted index is loaded, not rebuilt
    monkeypatch.setattr(pin_index, "build", lambda *a, **k: pytest.fail("rebuilt a persisted index"))
    assert main(["rank", "query 1", "--repo", str(repo), "--k", "3", "--candidates", "10"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "vector from store" in out[0] and out[1].split()[2] == ids[np.argsort(-(vecs @ queries["query 1"]))[0]]
    monkeypatch.undo()

    # new vectors for two pins + a materialisation = a new version: rebuilt, the old one removed
    old = version_dir
    target = queries["query 2"] / np.linalg.norm(queries["query 2"])
    changed = vecs[:2].copy()
    changed[1] = target
    ingest_pins(repo, _write_pins(env["tmp"] / "update.parquet", ids[:2], changed))
    _materialise(store)
    res = ranker.rank("query 2", k=3, candidates=20)
    assert res.hits[0].pin_id == ids[1] and res.hits[0].score == pytest.approx(float(target @ queries["query 2"]))
    assert not old.exists() and len(list((repo / pin_index.INDEX_DIR).iterdir())) == 1


def test_cli_errors_are_one_line(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    repo, tmp = env["repo"], env["tmp"]
    # the applied view says 16-d: a file of 8-d vectors is refused before anything is written
    bad = _write_pins(tmp / "bad.parquet", ["x1"], np.ones((1, 8), np.float32))
    assert main(["feast", "ingest", "--repo", str(repo), "--pins", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "row 1 (pin 'x1'): 8 values, but the feature view's vector_length is 16" in err
    # a query never materialised needs the bundle for live embedding
    assert main(["rank", "never seen", "--repo", str(repo)]) == 2
    assert "SEARCHSAGE_BUNDLE is not set" in capsys.readouterr().err
    assert main(["feast", "index", "--repo", str(repo)]) == 0
    assert f"{len(env['ids'])} pins, {DIM}-d" in capsys.readouterr().out
