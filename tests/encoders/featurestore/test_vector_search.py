"""Feast's vector API (``retrieve_online_documents_v2``) on Redis: the plugin against a real Redis with the
query engine (``redis_stack``) and against Debian's plain redis-server (``redis_server``)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from encoders.redis_records import vector_search as vs
from encoders.redis_records.embeddings import EmbeddingStore

DIM = 16
N = 240
PLUGIN = "encoders.featurestore.online_store.SearchSageRedisOnlineStore"
ENGINE = "encoders.featurestore.engine.EmbeddingComputeEngine"


def _repo(repo: Path, conn: str, *, project: str, metric: str | None = "inner_product", indexed: bool = True,
          skip_dedup: bool = True) -> tuple[Any, Any]:
    """An applied repository: view ``docs`` (entity ``pin_id``; ``embedding`` Array(Float32) of DIM with
    ``vector_index`` when ``indexed``; ``model_version``) over ``repo/docs.parquet``."""
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, String

    repo.mkdir(parents=True, exist_ok=True)
    (repo / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry: registry.db\nentity_key_serialization_version: 3\n"
        f"online_store:\n  type: {PLUGIN}\n  connection_string: \"{conn}\"\n  skip_dedup: {str(skip_dedup).lower()}\n"
        f"offline_store:\n  type: file\nbatch_engine:\n  type: {ENGINE}\n  backend: pandas\n"
    )
    pin = Entity(name="pin", join_keys=["pin_id"], value_type=ValueType.STRING)
    source = FileSource(name="docs_src", path=str(repo / "docs.parquet"), timestamp_field="event_timestamp")
    view = FeatureView(
        name="docs", entities=[pin], ttl=timedelta(days=3650), source=source, online=True,
        schema=[Field(name="pin_id", dtype=String), Field(name="model_version", dtype=String),
                Field(name="embedding", dtype=Array(Float32), vector_length=DIM, vector_index=indexed,
                      vector_search_metric=metric if indexed else None)],
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([pin, source, view])
    return store, store.get_feature_view("docs")


def _vectors(n: int = N, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    return [f"pin-{i}" for i in range(n)], rng.normal(size=(n, DIM)).astype(np.float32)


def _materialise(store: Any, repo: Path, ids: list[str], matrix: np.ndarray, when: datetime) -> None:
    pd.DataFrame({"pin_id": ids, "embedding": list(matrix), "model_version": "m1",
                  "event_timestamp": when}).to_parquet(repo / "docs.parquet")
    store.materialize(when - timedelta(days=1), when + timedelta(seconds=1))


def _search(store: Any, query: np.ndarray, k: int = 10, features: tuple[str, ...] = ("embedding", "model_version")
            ) -> dict[str, list[Any]]:
    """``store.retrieve_online_documents_v2(...).to_dict()``, rows ranked by their ``distance``."""
    got = store.retrieve_online_documents_v2(features=[f"docs:{f}" for f in features], query=query.tolist(),
                                             top_k=k).to_dict()
    order = np.argsort(got["distance"], kind="stable")
    return {name: [col[i] for i in order] for name, col in got.items()}


@pytest.fixture()
def stack(redis_stack: Any) -> Any:
    redis.Redis(host="127.0.0.1", port=redis_stack.port).flushall()
    return redis_stack


def test_materialised_pins_come_back_as_the_exact_top_10_by_inner_product(stack: Any, tmp_path: Path) -> None:
    when = datetime(2026, 5, 1, tzinfo=timezone.utc)
    store, _ = _repo(tmp_path / "r", stack.connection_string, project="vs_ip")
    ids, matrix = _vectors()
    _materialise(store, tmp_path / "r", ids, matrix, when)
    rng = np.random.default_rng(7)
    for _ in range(5):
        q = rng.normal(size=DIM).astype(np.float32)
        ip = matrix.astype(np.float64) @ q.astype(np.float64)
        want = [ids[i] for i in np.argsort(-ip, kind="stable")[:10]]
        got = _search(store, q)
        assert set(got) == {"pin_id", "embedding", "model_version", "distance"}
        assert got["pin_id"] == want  # nearest first, exactly the brute-force top 10
        expected = [-ip[ids.index(p)] for p in got["pin_id"]]
        np.testing.assert_allclose(got["distance"], expected, rtol=1e-6, atol=1e-6)  # pgvector: -<q, v>
        assert got["distance"] == sorted(got["distance"])
        for p, emb in zip(got["pin_id"], got["embedding"], strict=True):
            np.testing.assert_array_equal(np.asarray(emb, np.float32), matrix[ids.index(p)])
        assert set(got["model_version"]) == {"m1"}
    # top_k larger than 10, and a pin vector finds itself first with distance -|v|^2
    got = _search(store, matrix[3], k=25, features=("model_version",))
    assert len(got["pin_id"]) == 25 and got["pin_id"][0] == "pin-3"
    assert got["distance"][0] == pytest.approx(-float(matrix[3].astype(np.float64) @ matrix[3]), rel=1e-6)


@pytest.mark.parametrize(("metric", "expected"), [
    ("cosine", lambda m, q: 1 - (m @ q) / (np.linalg.norm(m, axis=1) * np.linalg.norm(q))),
    ("L2", lambda m, q: np.linalg.norm(m - q, axis=1)),
])
def test_cosine_and_l2_views_rank_and_measure_like_pgvector(stack: Any, tmp_path: Path, metric: str,
                                                            expected: Any) -> None:
    when = datetime(2026, 5, 1, tzinfo=timezone.utc)
    store, _ = _repo(tmp_path / "r", stack.connection_string, project=f"vs_{metric.lower()}", metric=metric)
    ids, matrix = _vectors(seed=1)
    _materialise(store, tmp_path / "r", ids, matrix, when)
    q = np.random.default_rng(3).normal(size=DIM).astype(np.float32)
    dist = expected(matrix.astype(np.float64), q.astype(np.float64))
    got = _search(store, q, features=("model_version",))
    assert got["pin_id"] == [ids[i] for i in np.argsort(dist, kind="stable")[:10]]
    np.testing.assert_allclose(got["distance"], np.sort(dist)[:10], rtol=1e-5, atol=1e-6)


def test_every_write_path_keeps_the_searchable_copy_in_step(stack: Any, tmp_path: Path) -> None:
    """Feast's own writer (push / write_to_online_store), the fast path (EmbeddingStore.write) and
    Feast's dedup rule (an older row changes neither the value nor its searchable copy)."""
    when = datetime(2026, 5, 1, tzinfo=timezone.utc)
    store, view = _repo(tmp_path / "r", stack.connection_string, project="vs_paths", skip_dedup=False)
    ids, matrix = _vectors(n=60, seed=2)
    _materialise(store, tmp_path / "r", ids, matrix, when)
    target = np.zeros(DIM, np.float32)
    target[0] = 1.0
    assert _search(store, target * 100, k=1)["pin_id"] != ["pin-new"]

    # Feast's stock writer: a new pin pointing far along the target direction becomes the nearest
    store.write_to_online_store("docs", pd.DataFrame({
        "pin_id": ["pin-new"], "embedding": [target * 50], "model_version": ["m2"],
        "event_timestamp": [when + timedelta(hours=1)]}))
    got = _search(store, target, k=1)
    assert got["pin_id"] == ["pin-new"] and got["model_version"] == ["m2"]
    assert got["distance"][0] == pytest.approx(-50.0)

    # an OLDER row for the same pin is skipped by Feast (skip_dedup: false), and so is its copy
    store.write_to_online_store("docs", pd.DataFrame({
        "pin_id": ["pin-new"], "embedding": [-target * 50], "model_version": ["old"],
        "event_timestamp": [when]}))
    got = _search(store, target, k=1)
    assert got["pin_id"] == ["pin-new"] and got["distance"][0] == pytest.approx(-50.0)

    # the fast path writes the copy with the row: pin-0 moves to the top, pin-new leaves it
    emb = EmbeddingStore.from_config(store.config, view)
    assert emb.vector_field == b"_vec:vs_paths:docs:embedding"
    assert emb.write(["pin-0", "pin-new"], np.stack([target * 80, -target]), "m3",
                     when + timedelta(hours=2)) == 2
    got = _search(store, target, k=2)
    assert got["pin_id"][0] == "pin-0" and got["distance"][0] == pytest.approx(-80.0)
    assert "pin-new" not in _search(store, target, k=5)["pin_id"]
    np.testing.assert_array_equal(emb.fetch(["pin-0"])[0][0], target * 80)  # stock value == indexed copy


def test_views_without_vector_index_get_no_extra_field(stack: Any, tmp_path: Path) -> None:
    from encoders.redis_records.vector_search import NotVectorIndexed

    when = datetime(2026, 5, 1, tzinfo=timezone.utc)
    store, view = _repo(tmp_path / "r", stack.connection_string, project="vs_plain", indexed=False)
    ids, matrix = _vectors(n=20)
    _materialise(store, tmp_path / "r", ids, matrix, when)
    client = redis.Redis(host="127.0.0.1", port=stack.port)
    fields = {f for k in client.scan_iter() for f in client.hkeys(k)}
    assert fields and not any(f.startswith(b"_vec:") for f in fields)
    assert EmbeddingStore.from_config(store.config, view).vector_field is None
    with pytest.raises(NotVectorIndexed, match="declares no vector field; declare the vector as Field"):
        _search(store, matrix[0])


def test_the_index_is_built_on_first_search_when_missing(stack: Any, tmp_path: Path) -> None:
    """Dropped (or created before the query engine was there): the first search rebuilds it over the hashes
    already stored and waits for the backfill, so it still answers with the exact top 10."""
    when = datetime(2026, 5, 1, tzinfo=timezone.utc)
    store, view = _repo(tmp_path / "r", stack.connection_string, project="vs_lazy")
    ids, matrix = _vectors(seed=4)
    _materialise(store, tmp_path / "r", ids, matrix, when)
    spec = vs.vector_spec(view, "vs_lazy")
    assert spec is not None
    client = redis.Redis(host="127.0.0.1", port=stack.port)
    assert vs.drop_index(client, spec, stack.connection_string)
    assert spec.index.encode() not in client.execute_command("FT._LIST")
    fresh = type(store)(repo_path=str(tmp_path / "r"))  # a new process would not remember the index
    q = matrix[5] + 0.1
    got = _search(fresh, q, features=("model_version",))
    assert got["pin_id"] == [ids[i] for i in np.argsort(-(matrix @ q), kind="stable")[:10]]
    assert spec.index.encode() in client.execute_command("FT._LIST")


def test_a_metric_other_than_the_indexed_one_is_refused(stack: Any, tmp_path: Path) -> None:
    store, view = _repo(tmp_path / "r", stack.connection_string, project="vs_metric")
    provider = store._get_provider()
    with pytest.raises(ValueError, match="indexed for IP, not 'L2'"):
        provider.online_store.retrieve_online_documents_v2(store.config, view, ["embedding"], [0.0] * DIM, 3, "L2")
    with pytest.raises(ValueError, match="not supported by Redis vector search"):
        vs.redis_metric("L1")


def test_plain_redis_applies_with_a_warning_and_refuses_search_in_one_line(redis_server: Any, tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    redis.Redis(host="127.0.0.1", port=redis_server.port).flushall()
    where = f"127.0.0.1:{redis_server.port}"
    store, _ = _repo(tmp_path / "r", redis_server.connection_string, project="vs_none")
    err = capsys.readouterr().err
    assert f"warning: no vector index for docs: the Redis query engine (RediSearch, in Redis Stack / Redis 8) " \
           f"is not loaded on {where}" in err
    ids, matrix = _vectors(n=10)
    _materialise(store, tmp_path / "r", ids, matrix, datetime(2026, 5, 1, tzinfo=timezone.utc))  # writes still work
    with pytest.raises(vs.VectorSearchUnavailable) as info:
        _search(store, matrix[0])
    msg = str(info.value)
    assert msg.startswith("the Redis query engine (RediSearch, in Redis Stack / Redis 8) is not loaded on "
                          f"{where}; FT.CREATE unknown")
    assert "\n" not in msg
