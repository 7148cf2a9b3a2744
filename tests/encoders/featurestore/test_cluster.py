"""Redis Cluster, live: a real 3-master cluster (``redis-cli --cluster create``) behind the real
``feast`` CLI, stock ``get_online_features``, ``EmbeddingStore.fetch``, ``searchsage serve``'s
cache-through store and ``rank``; and the one client factory's handling of ``redis_type``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from encoders.featurestore.sources import append_pins, append_queries

ROOT = Path(__file__).resolve().parents[3]
FEAST = str(Path(sys.executable).with_name("feast"))
sys.path.insert(0, str(ROOT / "tests" / "encoders" / "serving"))
QUERIES = [f"{c} {t}" for c in ("red", "oak", "brass", "steel", "green") for t in ("chair", "table", "lamp", "shelf")]
PINS = {f"p{i}": f"{c} {t} {i}" for i, (c, t) in enumerate(
    (c, t) for c in ("red", "blue", "white", "black", "copper") for t in ("chair", "door", "sink", "hook", "rug"))}


def _feast(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FEAST, "-c", str(repo), *args], env=env, capture_output=True, text=True, timeout=300)


def cluster_repo(tmp: Path, conn: str, bundle: Path) -> tuple[Path, dict[str, str], int]:
    """A copy of feature_repo/ whose online store is ``redis_type: redis_cluster`` on ``conn``."""
    dim = json.loads((bundle / "query" / "manifest.json").read_text())["dim"]
    repo = tmp / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("registry.db", "pin_index.*", "*.parquet"))
    yaml_path = repo / "feature_store.yaml"
    text, n = re.subn(r"redis_type: redis\b", "redis_type: redis_cluster", yaml_path.read_text())
    assert n == 1, "feature_store.yaml has no `redis_type: redis` line to switch"
    yaml_path.write_text(text)
    env = {**os.environ, "SEARCHSAGE_REDIS": conn, "SEARCHSAGE_BUNDLE": str(bundle),
           "SEARCHSAGE_EMBEDDING_DIM": str(dim)}
    return repo, env, dim


@pytest.fixture(scope="module")
def fs_cluster(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_bundle: Path, redis_cluster) -> dict:
    redis_cluster.flushall()
    repo, env, dim = cluster_repo(tmp_path_factory.mktemp("fs-cluster"), redis_cluster.connection_string,
                                  tiny_onnx_bundle)
    t0 = datetime.now(timezone.utc) - timedelta(hours=2)
    append_queries(repo, QUERIES, t0)
    append_pins(repo, list(PINS), list(PINS.values()), t0)
    applied = _feast(repo, env, "apply")
    assert applied.returncode == 0, applied.stderr[-3000:]
    mat = _feast(repo, env, "materialize-incremental", datetime.now(timezone.utc).isoformat())
    assert mat.returncode == 0, mat.stderr[-3000:]
    return {"repo": repo, "env": env, "dim": dim, "cluster": redis_cluster, "bundle": tiny_onnx_bundle}


@pytest.fixture()
def cluster_env(fs_cluster: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    for k in ("SEARCHSAGE_REDIS", "SEARCHSAGE_BUNDLE", "SEARCHSAGE_EMBEDDING_DIM"):
        monkeypatch.setenv(k, fs_cluster["env"][k])
    return fs_cluster


def test_feast_cli_materialises_into_every_master(cluster_env: dict) -> None:
    per_node = cluster_env["cluster"].keys_per_node()
    assert sum(per_node) == len(QUERIES) + len(PINS), per_node  # one hash per entity, no duplicates
    assert all(n > 0 for n in per_node), f"records should hash over all 3 masters, got {per_node}"


def test_stock_reads_and_the_fast_fetch_agree_bit_for_bit_across_slots(cluster_env: dict) -> None:
    from feast import FeatureStore

    from encoders.redis_records.connection import is_cluster
    from encoders.redis_records.embeddings import EmbeddingStore
    from encoders.runtime import BundleEncoder

    ids = [*PINS, "never-materialised"]
    store = FeatureStore(repo_path=str(cluster_env["repo"]))
    stock = store.get_online_features(features=["pin_embedding:embedding"],
                                      entity_rows=[{"pin_id": p} for p in ids]).to_dict()["embedding"]
    assert stock[-1] is None and all(v is not None for v in stock[:-1])
    fast = EmbeddingStore.from_store(store, "pin_embedding")
    assert is_cluster(fast.client)
    slots = {fast.client.keyslot(k) for k in fast.redis_keys(ids)}
    nodes = {fast.client.nodes_manager.get_node_from_slot(s).port for s in slots}
    assert len(nodes) == 3, "the keys of one fetch must live on several masters for this test to mean anything"
    matrix, found = fast.fetch(ids)
    assert found.tolist() == [True] * len(PINS) + [False] and not matrix[-1].any()
    assert matrix[:-1].tobytes() == np.asarray(stock[:-1], dtype=np.float32).tobytes()
    expected = BundleEncoder(cluster_env["bundle"], kind="pin").encode(list(PINS.values()))
    np.testing.assert_allclose(matrix[:-1], expected, atol=1e-5)
    m2, f2, versions = fast.fetch_with_versions(ids)
    assert m2.tobytes() == matrix.tobytes() and f2.tolist() == found.tolist() and versions[-1] is None


def test_serve_cache_through_reads_and_writes_back_on_the_cluster(cluster_env: dict) -> None:
    from feast import FeatureStore
    from serving_helpers import call, running, wait_until

    from encoders.redis_records.connection import is_cluster
    from encoders.redis_records.embeddings import EmbeddingStore
    from encoders.serving.config import ServeConfig
    from encoders.serving.server import build_app
    from encoders.serving.store import make_query_store

    dim = cluster_env["dim"]
    assert is_cluster(make_query_store(None, dim=dim, repo=cluster_env["repo"]).store.client)
    reader = EmbeddingStore.from_store(FeatureStore(repo_path=str(cluster_env["repo"])), "query_embedding")
    stored, _ = reader.fetch(["red chair", "oak lamp"])
    fresh = [f"copper {t} {i}" for i, t in enumerate(("hook", "door", "rug", "sink", "fan", "grill"))]
    cfg = ServeConfig(bundle=cluster_env["bundle"], threads=1, variant="fp32", repo=cluster_env["repo"])
    with running(build_app(cfg)) as port:
        assert call(port, "GET", "/health")[1]["store"]["state"] == "ok"
        s1, first = call(port, "POST", "/embed", {"queries": ["Red  Chair", "oak lamp", *fresh]})
        assert s1 == 200 and first["cached"] == [True, True] + [False] * len(fresh)
        # the materialised rows are served from the cluster, bit for bit
        assert np.asarray(first["embeddings"][:2], dtype=np.float32).tobytes() == stored.tobytes()
        assert wait_until(lambda: bool(reader.fetch(fresh)[1].all()), timeout_s=10), "write-back never reached the cluster"
        s2, second = call(port, "POST", "/embed", {"queries": fresh})
        _, metrics = call(port, "GET", "/metrics")
        _, health = call(port, "GET", "/health")
    assert s2 == 200 and second["cached"] == [True] * len(fresh)
    assert np.asarray(second["embeddings"], dtype=np.float32).tobytes() == \
        np.asarray(first["embeddings"][2:], dtype=np.float32).tobytes()
    assert metrics["cache"]["writes"] >= len(fresh) and metrics["cache"]["write_errors"] == 0
    assert metrics["cache"]["lookup_errors"] == 0 and health["store"]["state"] == "ok"
    reader.client.delete(*reader.redis_keys(fresh))  # one key per call: each is in its own slot


def test_rank_cli_ranks_against_the_cluster(cluster_env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.cli.main import main

    assert main(["rank", "red chair", "--repo", str(cluster_env["repo"]), "--k", "3", "--candidates", "10"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "vector from store" in lines[0], lines
    hits = [ln.split() for ln in lines[1:]]
    assert len(hits) == 3 and {h[2] for h in hits} <= set(PINS)
    scores = [float(h[1]) for h in hits]
    assert scores == sorted(scores, reverse=True)


def test_the_factory_builds_the_client_redis_type_names_and_refuses_impossible_ones(redis_cluster) -> None:
    from encoders.featurestore.online_store import SearchSageRedisOnlineStoreConfig
    from encoders.redis_records.connection import connect, is_cluster
    from encoders.serving.config import ServeConfigError
    from encoders.serving.store import redis_client

    conn = redis_cluster.connection_string
    client = connect(conn, "redis_cluster")
    assert is_cluster(client) and client.ping()
    inline = connect(f"{conn},redis_type=redis_cluster")  # SEARCHSAGE_REDIS alone can say "cluster"
    assert is_cluster(inline)
    assert is_cluster(redis_client(f"{conn},redis_type=redis_cluster"))
    cfg = SearchSageRedisOnlineStoreConfig(connection_string=f"{conn},redis_type=redis_cluster")
    assert cfg.redis_type.value == "redis_cluster" and "redis_type" not in cfg.connection_string
    with pytest.raises(ValueError, match=r"lists 3 nodes but redis_type is redis.*redis_cluster"):
        connect(conn)
    with pytest.raises(ServeConfigError, match="lists 3 nodes"):
        redis_client(conn)
    with pytest.raises(ValueError, match="only database 0"):
        connect(f"{conn},db=2", "redis_cluster")
    with pytest.raises(ValueError, match="use one of redis, redis_cluster, redis_sentinel"):
        connect(conn, "redis_shards")
