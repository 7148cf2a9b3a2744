"""Scale-out: the same repository (same definitions and UDFs) materialises with Feast's Ray engine.

Local Ray, one CPU, no dashboard; a handful of rows so it stays bounded."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from encoders.featurestore.sources import append_pins, append_queries

ROOT = Path(__file__).resolve().parents[2]
RAY_ENGINE = """batch_engine:
  type: ray.engine
  max_workers: 1
  enable_optimization: false
  ray_conf:
    num_cpus: 1
    include_dashboard: false
    log_to_driver: false
"""




@pytest.mark.slow
def test_ray_engine_materialises_with_the_bundle(feast_objects, tmp_path: Path, tiny_onnx_bundle: Path, redis_server,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    import ray
    import redis
    from feast import FeatureStore

    from encoders.runtime import BundleEncoder

    dim = json.loads((tiny_onnx_bundle / "query" / "manifest.json").read_text())["dim"]
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("registry.db", "pin_index.*", "*.parquet"))
    yaml = (repo / "feature_store.yaml").read_text()
    yaml, n = re.subn(r"batch_engine:\n(  .*\n)+", RAY_ENGINE, yaml)
    assert n == 1
    (repo / "feature_store.yaml").write_text(yaml)
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    append_queries(repo, ["Angle Bracket", "oak shelf"], t0)
    append_pins(repo, ["r1", "r2"], ["angle bracket steel", "oak shelf small"], t0)
    monkeypatch.setenv("SEARCHSAGE_REDIS", f"{redis_server.connection_string},db=8")
    monkeypatch.setenv("SEARCHSAGE_BUNDLE", str(tiny_onnx_bundle))
    monkeypatch.setenv("SEARCHSAGE_EMBEDDING_DIM", str(dim))
    raw = redis.Redis(host=redis_server.host, port=redis_server.port, db=8)
    raw.flushdb()
    store = FeatureStore(repo_path=str(repo))
    assert type(store.config.batch_engine).__name__ == "RayComputeEngineConfig"
    store.apply(feast_objects(repo, "ss_ray_definitions"))
    try:
        store.materialize(start_date=t0 - timedelta(minutes=1), end_date=datetime.now(timezone.utc))
    finally:
        if ray.is_initialized():
            ray.shutdown()
    assert raw.dbsize() == 4
    got = store.get_online_features(features=["query_embedding:embedding"],
                                    entity_rows=[{"query": "angle bracket"}, {"query": "oak shelf"}]).to_dict()
    expected = BundleEncoder(tiny_onnx_bundle, kind="query").encode(["angle bracket", "oak shelf"])
    np.testing.assert_allclose(np.asarray(got["embedding"], dtype=np.float32), expected, atol=1e-5)
    raw.flushdb()
