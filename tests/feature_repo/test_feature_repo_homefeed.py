"""End to end: homefeed through Feast. `searchsage feast ingest --homefeed` puts a tiny homefeed dataset into a copy
of feature_repo/, the real `feast apply` declares `user_embedding`, and the real `feast materialize` runs the
exported user tower (onnxruntime) inside materialisation into a real redis-server; stock `get_online_features`
and `EmbeddingStore` read back what `OnnxUserScorer` computes, `rank --user` searches the pin index with it."""

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
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.featurestore.sources import append_queries

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow
DB = 5  # a database of the shared redis fixture that no other test module uses


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


def _materialize(command: str, env: dict[str, str], cwd: Path) -> None:
    """The printed `feast ... materialize START $(date -u +%FT%T) --views user_embedding`, run by bash as printed."""
    done = subprocess.run(["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def hf(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_bundle: Path, redis_server) -> dict:
    from encoders.homefeed.config import HomefeedTrainConfig
    from encoders.homefeed.onnx_export import export_user_tower
    from encoders.homefeed.synthetic import HomefeedSynthConfig, write_synthetic_homefeed
    from encoders.homefeed.train import train_homefeed

    root = tmp_path_factory.mktemp("hf_feast")
    dim = json.loads((tiny_onnx_bundle / "pin" / "manifest.json").read_text())["dim"]
    data = root / "data"
    write_synthetic_homefeed(data, HomefeedSynthConfig(n_users=120, n_pins=300, events_per_user=25.0, days=40,
                                                       pin_embeddings="structured", structured_dim=dim, threads=1,
                                                       progress=False))
    train_homefeed(HomefeedTrainConfig(data=str(data), out=str(root / "run"), eval_days=8.0, history=8, hidden=32,
                                       id_dim=16, heads=2, batch_size=64, random_negatives=64, max_steps=12,
                                       threads=1, progress=False))
    export_user_tower(root / "run", root / "user_bundle")
    repo = root / "feature_repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    append_queries(repo, ["angle bracket", "tool set"], datetime.now(timezone.utc) - timedelta(hours=1))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
           "SEARCHSAGE_REDIS": f"{redis_server.connection_string},db={DB}", "SEARCHSAGE_BUNDLE": str(tiny_onnx_bundle),
           "SEARCHSAGE_EMBEDDING_DIM": str(dim), "SEARCHSAGE_USER_BUNDLE": str(root / "user_bundle"),
           "SEARCHSAGE_ENCODER_THREADS": "1"}
    import redis

    raw = redis.Redis(host=redis_server.host, port=redis_server.port, db=DB)
    raw.flushdb()
    ingest = _run(["searchsage", "feast", "ingest", "--repo", "feature_repo", "--pins", str(data / "pins.parquet"),
                   "--homefeed", str(data)], env, root)
    assert ingest.returncode == 0, ingest.stderr[-3000:]
    printed = re.search(r"feast -c feature_repo apply && (feast -c feature_repo materialize \S+ \$\(date -u \+%FT%T\) "
                        r"--views user_embedding)", ingest.stdout)
    assert printed, ingest.stdout
    for args in (["feast", "-c", "feature_repo", "apply"],
                 ["feast", "-c", "feature_repo", "materialize-incremental", datetime.now(timezone.utc).isoformat()]):
        done = _run(args, env, root)
        assert done.returncode == 0, done.stderr[-3000:]
    _materialize(printed.group(1), env, root)
    return {"root": root, "repo": repo, "data": data, "env": env, "raw": raw, "dim": dim,
            "bundle": root / "user_bundle", "command": printed.group(1), "ingest": ingest.stdout}


@pytest.fixture()
def store(hf: dict, monkeypatch: pytest.MonkeyPatch):
    from feast import FeatureStore

    for k in ("SEARCHSAGE_REDIS", "SEARCHSAGE_BUNDLE", "SEARCHSAGE_EMBEDDING_DIM", "SEARCHSAGE_USER_BUNDLE"):
        monkeypatch.setenv(k, hf["env"][k])
    return FeatureStore(repo_path=str(hf["repo"]))


def _expected(hf: dict, users: list[str], times: list[datetime]) -> np.ndarray:
    """What the user tower says of each user as of its row's time, with the scorer alone (one user per call)."""
    from encoders.homefeed.dataset import load_homefeed
    from encoders.homefeed.onnx_scorer import OnnxUserScorer

    scorer = OnnxUserScorer(hf["bundle"])
    data = load_homefeed(hf["repo"] / "data" / "homefeed")
    index = {u: i for i, u in enumerate(data.log.user_ids)}
    return np.stack([scorer.embed_users(data, np.array([index[u]]), t.timestamp() / 86_400 + 1e-6)[0]
                     for u, t in zip(users, times, strict=True)])


def _user_rows(hf: dict) -> tuple[list[str], list[datetime]]:
    rows = pq.read_table(hf["repo"] / "data" / "users.parquet").to_pandas().sort_values("event_timestamp")
    latest = rows.groupby("user_id")["event_timestamp"].max()
    return latest.index.tolist(), [t.to_pydatetime() for t in latest]


def test_materialised_user_vectors_are_the_exported_towers(hf: dict, store) -> None:
    from encoders.homefeed.onnx_scorer import OnnxUserScorer
    from encoders.redis_records.embeddings import EmbeddingStore

    users, times = _user_rows(hf)
    assert len(users) == 120
    got = store.get_online_features(features=store.get_feature_service("homefeed_user"),
                                    entity_rows=[{"user_id": u} for u in users]).to_dict()
    stock = np.asarray(got["embedding"], dtype=np.float32)
    assert stock.shape == (len(users), hf["dim"])
    np.testing.assert_allclose(stock, _expected(hf, users, times), atol=1e-5)
    assert set(got["model_version"]) == {OnnxUserScorer(hf["bundle"]).model_version}
    fast, found = EmbeddingStore.from_store(store, "user_embedding").fetch([*users, "nobody"])
    assert found.tolist() == [True] * len(users) + [False]
    assert fast[:-1].tobytes() == stock.tobytes()
    # one record per user, pin and query; the user rows are stamped at each user's latest event
    n_pins = pq.read_metadata(hf["data"] / "pins.parquet").num_rows
    assert hf["raw"].dbsize() == len(users) + n_pins + 2
    ts = store.get_online_features(features=["user_embedding:model_version"], entity_rows=[{"user_id": users[0]}]
                                   ).to_dict(include_event_timestamps=True)["model_version__ts"][0]
    assert ts == int(times[0].timestamp())  # seconds, as Feast returns them


def test_rematerialising_never_sees_later_events_and_new_activity_is_picked_up(hf: dict, store) -> None:
    from encoders.redis_records.embeddings import EmbeddingStore

    users, times = _user_rows(hf)
    fast = EmbeddingStore.from_store(store, "user_embedding")
    before, _ = fast.fetch(users)
    user, t_user = users[0], times[0]
    events_path = hf["repo"] / "data" / "homefeed" / "events.parquet"
    events = pq.read_table(events_path)
    pin = events.column("pin_id")[0].as_py()
    later = t_user + timedelta(hours=6)
    extra = pa.table({"user_id": [user], "pin_id": [pin], "action": ["save"],
                      "timestamp": pa.array([later], pa.timestamp("us", tz="UTC"))}).cast(events.schema)
    # an event after the user's row, written straight into the table: the same window re-materialised is unchanged
    pq.write_table(pa.concat_tables([events, extra]), events_path)
    _materialize(hf["command"], hf["env"], hf["root"])
    again, _ = fast.fetch(users)
    assert again.tobytes() == before.tobytes()

    # the same event ingested the usual way: one new row for that user, as of the new event
    more = hf["root"] / "more"
    shutil.copytree(hf["data"], more, dirs_exist_ok=True)
    pq.write_table(pa.concat_tables([pq.read_table(hf["data"] / "events.parquet"), extra]), more / "events.parquet")
    ingest = _run(["searchsage", "feast", "ingest", "--repo", "feature_repo", "--homefeed", str(more)], hf["env"],
                  hf["root"])
    assert ingest.returncode == 0 and "0 new, 1 with new events" in ingest.stdout, ingest.stdout + ingest.stderr
    command = re.search(r"(feast -c feature_repo materialize \S+ \$\(date -u \+%FT%T\) --views user_embedding)",
                        ingest.stdout).group(1)
    _materialize(command, hf["env"], hf["root"])
    after, _ = fast.fetch(users)
    assert after[1:].tobytes() == before[1:].tobytes()
    assert not np.allclose(after[0], before[0], atol=1e-4)
    np.testing.assert_allclose(after[0], _expected(hf, [user], [later])[0], atol=1e-5)


def test_rank_user_searches_the_pin_index_with_the_stored_vector(hf: dict, store, capsys) -> None:
    from encoders.cli.main import main
    from encoders.redis_records.embeddings import EmbeddingStore

    users, _ = _user_rows(hf)
    user = users[7]
    assert main(["rank", "--user", user, "--repo", str(hf["repo"]), "--k", "5"]) == 0
    out = capsys.readouterr().out
    assert f"user: {user!r} (homefeed vector from the store" in out
    ranked = [ln.split() for ln in out.splitlines() if re.match(r"^\s+\d+\s+-?\d\.\d{4}\s+p\d{6}\s", ln)]
    vec, found = EmbeddingStore.from_store(store, "user_embedding").fetch([user])
    pins = pq.read_table(hf["data"] / "pins.parquet", columns=["pin_id", "embedding"])
    matrix = np.asarray(pins.column("embedding").to_pylist(), dtype=np.float32)
    scores = matrix @ vec[0]
    exact = np.argsort(-scores, kind="stable")[:5]
    assert found[0] and [r[2] for r in ranked] == [pins.column("pin_id")[int(i)].as_py() for i in exact]
    np.testing.assert_allclose([float(r[1]) for r in ranked], scores[exact], atol=1e-4)

    assert main(["rank", "--user", "nobody", "--repo", str(hf["repo"])]) == 2
    err = capsys.readouterr().err
    assert "user 'nobody' has no stored vector in 'user_embedding'" in err and "Traceback" not in err
    assert main(["rank", "some query", "--user", user, "--repo", str(hf["repo"])]) == 2
    assert "not both" in capsys.readouterr().err


def test_ingest_again_changes_nothing(hf: dict) -> None:
    users_file = hf["repo"] / "data" / "users.parquet"
    stamp = users_file.stat().st_mtime_ns
    rows = pq.read_metadata(users_file).num_rows
    again = _run(["searchsage", "feast", "ingest", "--repo", "feature_repo", "--homefeed", str(hf["data"])],
                 hf["env"], hf["root"])
    assert again.returncode == 0 and "users: 0 new, 0 with new events, 120 unchanged" in again.stdout
    assert "materialize" not in again.stdout.split("users:")[1]
    assert users_file.stat().st_mtime_ns == stamp and pq.read_metadata(users_file).num_rows == rows


def test_a_bad_user_bundle_is_one_line_at_apply(hf: dict) -> None:
    env = {k: v for k, v in hf["env"].items() if k not in ("SEARCHSAGE_BUNDLE", "SEARCHSAGE_EMBEDDING_DIM")}
    env.update(SEARCHSAGE_REDIS="127.0.0.1:1", PWD=str(hf["root"]))
    missing = _run(["feast", "-c", "feature_repo", "plan"], {**env, "SEARCHSAGE_USER_BUNDLE": "runs/nope"}, hf["root"])
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == (
        f"error: SEARCHSAGE_USER_BUNDLE=runs/nope: no manifest.json in {hf['root'].resolve()}/runs/nope; point it at "
        "the output of `searchsage homefeed export` (relative paths are taken from the directory you run the "
        "command in)")
    other_d = _run(["feast", "-c", "feature_repo", "plan"], {**env, "SEARCHSAGE_EMBEDDING_DIM": str(hf["dim"] * 2)},
                   hf["root"])
    assert other_d.returncode == 1 and "Traceback" not in other_d.stderr
    assert other_d.stderr.strip().startswith(f"error: bundle {hf['bundle']} (user tower) makes {hf['dim']}-d embeddings "
                                             f"but feature view 'user_embedding' declares embedding vector_length="
                                             f"{hf['dim'] * 2}")
