"""Without Redis (the demo's SQLite fallback) the repository still materialises through our engine's
stock branch, and ``rank`` reads pin embeddings through stock ``get_online_features``."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from encoders.demo.online_store import use_sqlite
from encoders.featurestore.sources import append_pins, append_queries

ROOT = Path(__file__).resolve().parents[2]




@pytest.mark.slow
def test_sqlite_online_store_materialises_and_ranks(feast_objects, tmp_path: Path, tiny_onnx_bundle: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from feast import FeatureStore

    from encoders.ranking.ranker import StockEmbeddingReader, embedding_reader, rank_query
    from encoders.runtime import BundleEncoder

    dim = json.loads((tiny_onnx_bundle / "pin" / "manifest.json").read_text())["dim"]
    repo = tmp_path / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("registry.db", "pin_index.*", "*.parquet"))
    use_sqlite(repo)  # the demo's fallback rewrite of feature_store.yaml
    yaml = (repo / "feature_store.yaml").read_text()
    assert "type: sqlite" in yaml and "SearchSageRedisOnlineStore" not in yaml and "batch_engine:" in yaml
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    append_queries(repo, ["Red Chair"], t0)
    pins = {"s1": "red chair wood", "s2": "garden hose green", "s3": "brass lamp"}
    append_pins(repo, list(pins), list(pins.values()), t0)
    monkeypatch.setenv("SEARCHSAGE_BUNDLE", str(tiny_onnx_bundle))
    monkeypatch.setenv("SEARCHSAGE_EMBEDDING_DIM", str(dim))
    store = FeatureStore(repo_path=str(repo))
    store.apply(feast_objects(repo, "ss_sqlite_definitions"))
    store.materialize(start_date=t0 - timedelta(minutes=1), end_date=datetime.now(timezone.utc))
    reader = embedding_reader(store, "pin_embedding", dim)
    assert isinstance(reader, StockEmbeddingReader)
    matrix, found = reader.fetch(["s1", "s2", "s3", "nope"])
    assert found.tolist() == [True, True, True, False] and not matrix[3].any()
    np.testing.assert_allclose(matrix[:3], BundleEncoder(tiny_onnx_bundle, kind="pin").encode(list(pins.values())),
                               atol=1e-5)
    result = rank_query(repo, "garden hoses", k=2, candidates=3)
    assert result.vector_source == "live" and len(result.hits) == 2
    assert {h.pin_id for h in result.hits} <= set(pins)
    assert result.hits[0].score >= result.hits[1].score
