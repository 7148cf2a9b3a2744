"""Against a real redis-server: the pin_engagement view materialises with stock Feast, the Feast and the
dataset feature sources give identical feature matrices, and `searchsage rank --rerank` uses the student."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from relevance_helpers import make_dataset, make_labels

from encoders.cli.main import main
from encoders.featurestore.sources import append_pins, append_queries
from encoders.relevance.engagement_stats import STAT_COLUMNS, pin_engagement_stats, read_engagements
from encoders.relevance.feature_sources import DatasetFeatureSource, FeastFeatureSource
from encoders.relevance.features import (
    ProductProjection,
    StudentFeaturizer,
    TextIndex,
    gather_inputs,
)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
FEAST = str(Path(sys.executable).with_name("feast"))
DB = 12  # a database of the shared redis fixture no other module uses
ENV_KEYS = ("SEARCHSAGE_REDIS", "SEARCHSAGE_BUNDLE", "SEARCHSAGE_EMBEDDING_DIM")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_bundle: Path, redis_server) -> dict:
    import redis

    base = tmp_path_factory.mktemp("student-feast")
    ds = make_dataset(base / "ds")
    labels = make_labels(ds, base / "labels.parquet")
    lab = pd.read_parquet(labels)
    dim = json.loads((tiny_onnx_bundle / "query" / "manifest.json").read_text())["dim"]
    repo = base / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    materialised = sorted(set(lab["query"]))  # what a training repository holds; others are encoded live
    pins = pd.read_parquet(ds / "pins.parquet", columns=["pin_id", "text"])
    t0 = datetime.now(timezone.utc) - timedelta(minutes=10)
    append_queries(repo, materialised, t0)
    append_pins(repo, pins["pin_id"].tolist(), pins["text"].tolist(), t0)
    assert main(["relevance", "pin-stats", "--data", str(ds), "--repo", str(repo)]) == 0
    env = {**os.environ, "SEARCHSAGE_REDIS": f"{redis_server.connection_string},db={DB}",
           "SEARCHSAGE_BUNDLE": str(tiny_onnx_bundle), "SEARCHSAGE_EMBEDDING_DIM": str(dim)}
    redis.Redis(host=redis_server.host, port=redis_server.port, db=DB).flushdb()
    for args in (["apply"], ["materialize-incremental", datetime.now(timezone.utc).isoformat()]):
        done = subprocess.run([FEAST, "-c", str(repo), *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    return {"ds": ds, "labels": labels, "lab": lab, "repo": repo, "env": env, "bundle": tiny_onnx_bundle,
            "materialised": set(materialised), "texts": dict(zip(pins["pin_id"], pins["text"], strict=True)),
            "base": base}


@pytest.fixture()
def feast_env(world: dict, monkeypatch: pytest.MonkeyPatch) -> dict:
    for k in ENV_KEYS:
        monkeypatch.setenv(k, world["env"][k])
    return world


def test_stock_feast_serves_the_engagement_statistics(feast_env: dict) -> None:
    from feast import FeatureStore

    expected = pin_engagement_stats(read_engagements(feast_env["ds"])).set_index("pin_id")
    engaged = expected.index[:20].tolist()
    never = sorted(set(feast_env["texts"]) - set(expected.index))[:3]
    store = FeatureStore(repo_path=str(feast_env["repo"]))
    got = store.get_online_features(features=store.get_feature_service("ranker_pin_engagement"),
                                    entity_rows=[{"pin_id": p} for p in engaged + never]).to_dict()
    for c in STAT_COLUMNS:
        assert got[c][: len(engaged)] == pytest.approx(expected.loc[engaged, c].tolist())
        assert got[c][len(engaged):] == [None] * len(never)


def _both(env: dict, q: list[str], p: list[str]) -> tuple[np.ndarray, np.ndarray, StudentFeaturizer]:
    texts = [env["texts"].get(x, "red chair") for x in p]
    a = gather_inputs(DatasetFeatureSource(env["ds"], bundle=env["bundle"]), q, p)
    b = gather_inputs(FeastFeatureSource(env["repo"]), q, p)
    ok = a.pin_found[a.pi]
    proj = ProductProjection.fit(a.query_vectors[a.qi[ok]], a.pin_vectors[a.pi[ok]], k=4)
    feat = StudentFeaturizer(TextIndex.fit(list(env["texts"].values())), proj)
    return feat.matrix(a, q, texts), feat.matrix(b, q, texts), feat


def test_feast_and_dataset_sources_give_identical_features(feast_env: dict) -> None:
    lab = feast_env["lab"]
    q, p = lab["query"].tolist(), lab["pin_id"].tolist()
    p[0] = "not-a-pin"  # unknown pin: NaN vector features, zero statistics, in both sources
    xa, xb, feat = _both(feast_env, q, p)
    assert xa.shape == (len(lab), len(feat.feature_names))
    assert np.isnan(xa[0, 0]) and not np.isnan(xa[1:, 0]).any() and not xa[0, -6:].any()
    assert xa.tobytes() == xb.tobytes()  # bit-identical, NaNs included
    assert np.abs(xa[1:, 0]).max() > 0 and xa[:, -6:].any()  # and not trivially so


def test_live_encoded_queries_agree_to_float_rounding(feast_env: dict) -> None:
    lab = feast_env["lab"].head(120)
    q = [f"{x} on sale" for x in lab["query"]]  # never materialised: the ODFV encodes them live
    xa, xb, _ = _both(feast_env, q, lab["pin_id"].tolist())
    vec = 1 + 4  # dot + the projection
    np.testing.assert_allclose(xa[:, :vec], xb[:, :vec], atol=1e-5)
    assert xa[:, vec:].tobytes() == xb[:, vec:].tobytes()


def test_train_on_feast_and_rerank(feast_env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.normalize import normalize_query
    from encoders.relevance.student import StudentScorer

    student = feast_env["base"] / "student"
    assert main(["relevance", "train-student", "--labels", str(feast_env["labels"]), "--data", str(feast_env["ds"]),
                 "--repo", str(feast_env["repo"]), "--out", str(student), "--family", "lightgbm",
                 "--max-rounds", "60", "--threads", "1"]) == 0
    assert "student: lightgbm" in capsys.readouterr().out
    lab = feast_env["lab"].head(200)
    texts = [feast_env["texts"][x] for x in lab["pin_id"]]
    online = StudentScorer(student, FeastFeatureSource(feast_env["repo"]))
    offline = StudentScorer(student, DatasetFeatureSource(feast_env["ds"], bundle=feast_env["bundle"]))
    s1 = online.score(lab["query"].tolist(), lab["pin_id"].tolist(), texts)
    assert s1.dtype == np.float64 and s1.shape == (200,) and ((s1 >= 1) & (s1 <= 3)).all()
    assert np.array_equal(s1, offline.score(lab["query"].tolist(), lab["pin_id"].tolist(), texts))

    query = lab["query"].iloc[0]
    assert main(["rank", query, "--repo", str(feast_env["repo"]), "--rerank", str(student), "--k", "4",
                 "--candidates", "20"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "reranked by student" in lines[1]
    rows = [ln.split(maxsplit=4) for ln in lines[2:]]
    assert len(rows) == 4
    grades = [float(r[1]) for r in rows]
    assert grades == sorted(grades, reverse=True)
    ids = [r[3] for r in rows]
    again = online.score([normalize_query(query)] * 4, ids, [feast_env["texts"][x] for x in ids])
    np.testing.assert_allclose(grades, again, atol=5e-4)  # printed with 3 decimals
    assert main(["rank", query, "--repo", str(feast_env["repo"]), "--rerank", str(feast_env["base"])]) == 2
    assert "student.json" in capsys.readouterr().err


def test_pin_stats_rerun_is_a_no_op(feast_env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    src = feast_env["repo"] / "data" / "pin_engagement.parquet"
    before = src.stat().st_mtime_ns
    assert main(["relevance", "pin-stats", "--data", str(feast_env["ds"]), "--repo", str(feast_env["repo"])]) == 0
    assert "unchanged" in capsys.readouterr().out and src.stat().st_mtime_ns == before
