"""Pure helpers of the materialisation engine and the bundle-dimension checks."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from encoders.featurestore.engine import arrow_embedding_matrix, timestamps_to_bytes
from encoders.featurestore.udfs import BundleDimMismatch, check_views_against_bundle


def test_arrow_matrix_is_exact_and_refuses_bad_widths() -> None:
    m = np.random.default_rng(0).standard_normal((5, 6), dtype=np.float32)
    col = pa.chunked_array([pa.array(list(m[:2]), pa.list_(pa.float32())), pa.array(list(m[2:]), pa.list_(pa.float32()))])
    assert arrow_embedding_matrix(col, 6, "v").tobytes() == m.tobytes()
    assert arrow_embedding_matrix(col.combine_chunks().slice(1, 3), 6, "v").tobytes() == m[1:4].tobytes()
    with pytest.raises(ValueError, match="declares vector_length=8"):
        arrow_embedding_matrix(col, 8, "v")
    with pytest.raises(ValueError, match="different lengths"):
        arrow_embedding_matrix(pa.array([[1.0, 2.0], [1.0]], pa.list_(pa.float32())), None, "v")
    with pytest.raises(ValueError, match="null embedding"):
        arrow_embedding_matrix(pa.array([[1.0], None], pa.list_(pa.float32())), 1, "v")


def test_timestamps_match_protobuf() -> None:
    ts = [datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc), datetime(2025, 1, 2, tzinfo=timezone.utc)]
    got = timestamps_to_bytes(pa.array(ts, pa.timestamp("us", tz="UTC")))
    for t, b in zip(ts, got, strict=True):
        pb = Timestamp()
        pb.FromDatetime(t)
        assert b == pb.SerializeToString()


def test_apply_refuses_a_bundle_of_another_dimension(tiny_onnx_bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, String

    monkeypatch.setenv("SEARCHSAGE_BUNDLE", str(tiny_onnx_bundle))
    src = FileSource(name="s", path="x.parquet", timestamp_field="event_timestamp")

    def view(dim: int) -> FeatureView:
        return FeatureView(name="query_embedding", entities=[Entity(name="query", join_keys=["query"], value_type=ValueType.STRING)], source=src,
                           tags={"searchsage.tower": "query"},
                           schema=[Field(name="query", dtype=String),
                                   Field(name="embedding", dtype=Array(Float32), vector_length=dim)])

    check_views_against_bundle([view(32)])  # the tiny bundle is 32-d
    with pytest.raises(BundleDimMismatch, match="makes 32-d embeddings but feature view 'query_embedding' declares"):
        check_views_against_bundle([view(384)])


def test_engine_materialises_latest_row_per_key_with_exact_values(tmp_path, redis_server) -> None:
    from datetime import timedelta

    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, String

    from encoders.redis_records.embeddings import EmbeddingStore

    now = datetime.now(timezone.utc)
    m = np.random.default_rng(3).standard_normal((4, 8), dtype=np.float32)
    pd.DataFrame({"pin_id": ["a", "b", "a", "c"], "embedding": list(m), "model_version": ["old", "v", "new", "v"],
                  "event_timestamp": pd.Series([now - timedelta(minutes=m_) for m_ in (30, 20, 10, 90 * 24 * 60)],
                                               dtype="datetime64[us, UTC]")}).to_parquet(tmp_path / "e.parquet")
    (tmp_path / "feature_store.yaml").write_text(
        "project: t\nprovider: local\nregistry: registry.db\nentity_key_serialization_version: 3\n"
        f"online_store:\n  type: redis\n  connection_string: \"{redis_server.connection_string},db=9\"\n"
        "offline_store:\n  type: file\nbatch_engine:\n  type: encoders.featurestore.engine.EmbeddingComputeEngine\n"
        "  backend: pandas\n")
    pin = Entity(name="pin", join_keys=["pin_id"], value_type=ValueType.STRING)
    fv = FeatureView(name="e", entities=[pin],
                     ttl=timedelta(days=1), source=FileSource(path=str(tmp_path / "e.parquet"),
                                                              timestamp_field="event_timestamp"),
                     schema=[Field(name="pin_id", dtype=String), Field(name="embedding", dtype=Array(Float32)),
                             Field(name="model_version", dtype=String)])
    fs = FeatureStore(repo_path=str(tmp_path))
    fs.apply([pin, fv])
    store = EmbeddingStore.from_config(fs.config, fs.get_feature_view("e"), dim=8)
    store.client.flushdb()
    fs.materialize(start_date=now - timedelta(days=1), end_date=now)  # "c" is outside the window
    got, found, versions = store.fetch_with_versions(["a", "b", "c"])
    assert found.tolist() == [True, True, False] and versions == ["new", "v", None]
    assert got[0].tobytes() == m[2].tobytes() and got[1].tobytes() == m[1].tobytes()
    stock = fs.get_online_features(features=["e:embedding"], entity_rows=[{"pin_id": "a"}]).to_dict()
    assert np.asarray(stock["embedding"][0], dtype=np.float32).tobytes() == m[2].tobytes()
    store.client.flushdb()
