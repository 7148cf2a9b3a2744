"""The one model-version rule outside the serving cache: ``EmbeddingStore.fetch(expect_version=)`` and
the ``query_vector`` on-demand view (``live_query_embedding``), against a real redis-server."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import redis

from encoders.featurestore import udfs
from encoders.featurestore.contract import QUERY_JOIN_KEY, QUERY_VIEW
from encoders.featurestore.sources import append_pins, append_queries
from encoders.localredis.server import LocalRedis
from encoders.redis_records.embeddings import EmbeddingStore
from encoders.runtime import BundleEncoder

ROOT = Path(__file__).resolve().parents[3]
DB = 13  # a database of the shared redis fixture that no other test module uses
CURRENT = "query-98c4071e04ab+int8+pinfb-k5-w0.1-0123456789ab"


def _store(server: LocalRedis, dim: int) -> EmbeddingStore:
    client = redis.Redis(host=server.host, port=server.port, db=DB)
    client.flushdb()
    return EmbeddingStore(client=client, project="searchsage", feature_view=QUERY_VIEW, join_key=QUERY_JOIN_KEY, dim=dim)


def test_fetch_with_an_expected_version_marks_rows_of_any_other_version_not_found(redis_server: LocalRedis) -> None:
    store = _store(redis_server, dim=4)
    rows = {
        "current": CURRENT,
        "same parts, other order": "query-98c4071e04ab+pinfb-k5-w0.1-0123456789ab+int8",
        "no feedback": "query-98c4071e04ab+int8",
        "fp32": "query-98c4071e04ab+pinfb-k5-w0.1-0123456789ab",
        "other feedback": "query-98c4071e04ab+int8+pinfb-k3-w0.1-0123456789ab",
        "other bundle": "query-000000000000+int8+pinfb-k5-w0.1-0123456789ab",
        "extra part": f"{CURRENT}+extra",
    }
    keys = list(rows)
    vectors = np.arange(1, 1 + 4 * len(keys), dtype=np.float32).reshape(len(keys), 4)
    store.write(keys, vectors, model_version=list(rows.values()))
    # A row without a model_version field (written by hand, not by Feast) and a key never written.
    store.client.hset(store.redis_keys(["unversioned"])[0], store._emb_field,
                      store.client.hget(store.redis_keys(["current"])[0], store._emb_field))
    asked = [*keys, "unversioned", "absent"]

    plain, found_any = store.fetch(asked)
    assert found_any.tolist() == [True] * (len(keys) + 1) + [False]  # no expectation: any version is found
    assert plain[: len(keys)].tobytes() == vectors.tobytes()

    matrix, found = store.fetch(asked, expect_version=CURRENT)
    assert found.tolist() == [True, True] + [False] * (len(asked) - 2)
    assert matrix[:2].tobytes() == vectors[:2].tobytes()
    assert not matrix[2:].any()  # stale rows are zeros, never another model's vector

    m2, f2, versions = store.fetch_with_versions(asked, expect_version=CURRENT)
    assert f2.tolist() == found.tolist() and m2.tobytes() == matrix.tobytes()
    assert versions == [*rows.values(), None, None]  # what is stored, so a caller can count stale rows
    # The parsed form and a string of the same parts in another order are the same expectation.
    from encoders.runtime.model_version import ModelVersion

    assert store.fetch(asked, expect_version=ModelVersion.parse(CURRENT))[1].tolist() == found.tolist()
    assert store.fetch(["fp32", "current"], expect_version="query-98c4071e04ab+pinfb-k5-w0.1-0123456789ab"
                       )[1].tolist() == [True, False]


def _pins(tmp_path: Path, dim: int) -> Path:
    from encoders.data.schema import PINS, write_table

    pins = np.random.default_rng(3).normal(size=(60, dim)).astype(np.float32)
    path = tmp_path / "pins.parquet"
    write_table(pa.table({"pin_id": [f"p{i}" for i in range(60)], "text": ["t"] * 60,
                          "embedding": pa.array([r.tolist() for r in pins], pa.list_(pa.float32()))}), path, PINS)
    return path


def test_the_on_demand_view_re_encodes_rows_of_another_version(
    tiny_onnx_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Called as Feast calls it: a pandas frame of the request column and the stored features."""
    monkeypatch.setenv(udfs.BUNDLE_ENV, str(tiny_onnx_bundle))
    monkeypatch.setenv(udfs.VARIANT_ENV, "fp32")
    monkeypatch.delenv(udfs.PIN_FEEDBACK_ENV, raising=False)
    enc = BundleEncoder(tiny_onnx_bundle, variant="fp32")
    live_v = enc.model_version
    sentinel = np.full(enc.dim, 0.25, dtype=np.float32)  # no encoder output looks like this
    texts = ["red chair", "oak table", "brass lamp", "garden hose", "steel shelf"]
    frame = pd.DataFrame({
        "query_text": texts,
        "embedding": [sentinel.tolist()] * 4 + [None],
        "model_version": [live_v, f"{live_v}+int8", "query-000000000000", None, None],
    })
    out = udfs.live_query_embedding(frame)
    assert out["query_vector_source"].tolist() == ["store", "live", "live", "live", "live"]
    assert out["query_vector_model_version"].tolist() == [live_v] * 5
    got = np.stack(out["query_vector"])
    assert got[0].tobytes() == sentinel.tobytes()
    np.testing.assert_allclose(got[1:], enc.encode(texts[1:]), atol=1e-5)
    assert not np.isclose(got[1:], sentinel).all(axis=1).any()

    # With pin feedback the live version carries the feedback tag: the plain row is now stale,
    # a row of the feedback version is served.
    monkeypatch.setenv(udfs.PIN_FEEDBACK_ENV, str(_pins(tmp_path, enc.dim)))
    monkeypatch.setenv(udfs.PRF_K_ENV, "3")
    fb_v = udfs.get_encoder("query").model_version
    assert fb_v.startswith(f"{live_v}+pinfb-k3-")
    out = udfs.live_query_embedding(pd.DataFrame({
        "query_text": texts[:3], "embedding": [sentinel.tolist()] * 3,
        "model_version": [live_v, fb_v, fb_v.replace("pinfb-k3-", "pinfb-k4-")],
    }))
    assert out["query_vector_source"].tolist() == ["live", "store", "live"]
    assert out["query_vector_model_version"].tolist() == [fb_v] * 3
    fb = np.stack(out["query_vector"])
    assert fb[1].tobytes() == sentinel.tobytes()
    np.testing.assert_allclose(fb[[0, 2]], udfs.get_encoder("query").encode([texts[0], texts[2]]), atol=1e-5)


def _load_definitions(repo: Path) -> list[object]:
    """The Feast objects of ``repo/definitions.py`` (what ``feast apply`` registers)."""
    from feast import BatchFeatureView, Entity, FeatureService, FileSource, OnDemandFeatureView, RequestSource

    spec = importlib.util.spec_from_file_location("ss_fetch_versions_definitions", repo / "definitions.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    kinds = (BatchFeatureView, Entity, FeatureService, FileSource, OnDemandFeatureView, RequestSource)
    return [v for v in vars(mod).values() if isinstance(v, kinds)]


@pytest.mark.slow
def test_get_online_features_serves_current_rows_and_re_encodes_stale_ones(
    tiny_onnx_bundle: Path, redis_server: LocalRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stock ``get_online_features`` on an applied copy of feature_repo/ (rows written as Feast writes them)."""
    from feast import FeatureStore

    enc = BundleEncoder(tiny_onnx_bundle, variant="fp32")
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("registry.db", "pin_index.*", "*.parquet"))
    redis.Redis(host=redis_server.host, port=redis_server.port, db=DB).flushdb()
    monkeypatch.setenv("SEARCHSAGE_REDIS", f"{redis_server.connection_string},db={DB}")
    monkeypatch.setenv(udfs.BUNDLE_ENV, str(tiny_onnx_bundle))
    monkeypatch.setenv(udfs.VARIANT_ENV, "fp32")
    monkeypatch.setenv("SEARCHSAGE_EMBEDDING_DIM", str(enc.dim))
    monkeypatch.delenv(udfs.PIN_FEEDBACK_ENV, raising=False)
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    append_queries(repo, ["red chair"], t0)  # sources exist, as after `searchsage feast ingest`
    append_pins(repo, ["p1"], ["red chair wood"], t0)
    fs = FeatureStore(repo_path=str(repo))
    fs.apply(_load_definitions(repo))
    writer = EmbeddingStore.from_config(fs.config, fs.get_feature_view(QUERY_VIEW))
    sentinel = np.full((2, enc.dim), 0.25, dtype=np.float32)
    writer.write(["red chair", "oak table"], sentinel, model_version=[enc.model_version, f"{enc.model_version}+int8"])

    rows = [{"query": q, "query_text": q} for q in ("red chair", "oak table", "never stored")]
    got = fs.get_online_features(
        features=["query_vector:query_vector", "query_vector:query_vector_source",
                  "query_vector:query_vector_model_version"], entity_rows=rows).to_dict()
    assert got["query_vector_source"] == ["store", "live", "live"]
    assert got["query_vector_model_version"] == [enc.model_version] * 3
    vecs = np.asarray(got["query_vector"], dtype=np.float32)
    assert vecs[0].tobytes() == sentinel[0].tobytes()
    np.testing.assert_allclose(vecs[1:], enc.encode(["oak table", "never stored"]), atol=1e-5)
    # The fast path applies the same rule to the same records.
    assert writer.fetch(["red chair", "oak table"], expect_version=enc.model_version)[1].tolist() == [True, False]
