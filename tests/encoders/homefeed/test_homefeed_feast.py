"""The Feast side of homefeed without Feast: the ``user_embedding`` UDF (as-of semantics, cold users, the
per-request times of ``OnnxUserScorer``) and ``searchsage feast ingest --homefeed``'s merge into a repository."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.featurestore.contract import HOMEFEED_DIR, USER_BUNDLE_ENV, USERS_SOURCE
from encoders.featurestore.sources import IngestError
from encoders.featurestore.user_sources import ingest_homefeed
from encoders.featurestore.user_udfs import as_of_days, embed_user_rows
from encoders.homefeed.dataset import load_homefeed
from encoders.homefeed.onnx_export import export_user_tower
from encoders.homefeed.onnx_scorer import OnnxUserScorer


@pytest.fixture(scope="module")
def bundle(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("homefeed_feast") / "bundle"
    export_user_tower(tiny_run, out)
    return out


@pytest.fixture()
def scorer_env(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> OnnxUserScorer:
    monkeypatch.setenv(USER_BUNDLE_ENV, str(bundle))
    for k in ("SEARCHSAGE_BUNDLE", "SEARCHSAGE_EMBEDDING_DIM"):
        monkeypatch.delenv(k, raising=False)
    return OnnxUserScorer(bundle)


def _user_times(data_dir: Path, user: str) -> pd.Series:
    ev = pq.read_table(data_dir / "events.parquet").to_pandas()
    pos = ev[(ev.user_id == user) & (ev.action != "hide")].sort_values("timestamp")
    return pos["timestamp"].reset_index(drop=True)


def test_scorer_takes_one_time_per_request(tiny_homefeed: Path, bundle: Path) -> None:
    data = load_homefeed(tiny_homefeed)
    s = OnnxUserScorer(bundle)
    users = np.array([0, 1, 2, 0])
    at = np.array([s.split, s.split - 5.0, s.split + 3.0, s.split - 20.0])
    together = s.embed_users(data, users, at)
    alone = np.stack([s.embed_users(data, users[i:i + 1], float(at[i]))[0] for i in range(len(users))])
    np.testing.assert_array_equal(together, alone)
    assert not np.allclose(together[0], together[3])  # the same user at two times: two histories
    with pytest.raises(ValueError, match="expected one time or 4 times"):
        s.embed_users(data, users, at[:2])


def test_udf_embeds_each_row_as_of_its_time_event_included(tiny_homefeed: Path, scorer_env: OnnxUserScorer) -> None:
    data = load_homefeed(tiny_homefeed)
    user = data.log.user_ids[3]
    times = _user_times(tiny_homefeed, user)
    t_mid = times.iloc[len(times) // 2]
    rows = pd.DataFrame({"user_id": [user, user, "never-seen"],
                         "event_timestamp": pd.Series([t_mid, t_mid - timedelta(microseconds=1), t_mid],
                                                      dtype="datetime64[us, UTC]")})
    out = embed_user_rows(rows, tiny_homefeed)
    assert list(out.columns) == ["user_id", "event_timestamp", "embedding", "model_version"]
    assert set(out["model_version"]) == {scorer_env.model_version}
    got = np.stack(out["embedding"].to_list())
    u = data.log.user_ids.index(user)
    t = float(as_of_days(rows["event_timestamp"].iloc[:1])[0])
    # as of t: the event at exactly t counts (strictly-before a hair after t); a microsecond earlier it does not
    np.testing.assert_allclose(got[0], scorer_env.embed_users(data, np.array([u]), t + 1e-9)[0], atol=1e-6)
    np.testing.assert_allclose(got[1], scorer_env.embed_users(data, np.array([u]), t)[0], atol=1e-6)
    assert not np.allclose(got[0], got[1], atol=1e-6)
    # a user without events: ID (unknown row) + no interests + empty history, still a unit vector
    assert np.isfinite(got[2]).all() and abs(np.linalg.norm(got[2]) - 1) < 1e-4
    empty = embed_user_rows(rows.iloc[:0], tiny_homefeed)
    assert len(empty) == 0 and {"embedding", "model_version"} <= set(empty.columns)


def test_udf_refuses_a_bundle_of_another_pin_space(tiny_homefeed: Path, scorer_env: OnnxUserScorer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from encoders.featurestore.udfs import BundleDimMismatch

    monkeypatch.setenv("SEARCHSAGE_EMBEDDING_DIM", str(scorer_env.dim + 1))
    rows = pd.DataFrame({"user_id": ["u000"], "event_timestamp": pd.Series([pd.Timestamp("2024-02-01", tz="UTC")])})
    with pytest.raises(BundleDimMismatch, match=r"\(user tower\) makes 16-d embeddings"):
        embed_user_rows(rows, tiny_homefeed)
    monkeypatch.delenv(USER_BUNDLE_ENV)
    with pytest.raises(FileNotFoundError, match=f"{USER_BUNDLE_ENV} is not set"):
        embed_user_rows(rows, tiny_homefeed)


def test_ingest_merges_and_is_idempotent(tiny_homefeed: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    first = ingest_homefeed(repo, tiny_homefeed)
    events = pq.read_table(tiny_homefeed / "events.parquet")
    n_users = len(set(events.column("user_id").to_pylist()))
    assert (first.users_new, first.users_refreshed, first.users_unchanged) == (n_users, 0, 0)
    assert first.events_new == first.events_total == events.num_rows
    users = pq.read_table(repo / USERS_SOURCE).to_pandas()
    latest = events.to_pandas().groupby("user_id")["timestamp"].max()
    assert users.set_index("user_id")["event_timestamp"].sort_index().equals(latest.sort_index().rename("event_timestamp"))
    assert first.materialize_command(repo) == (
        f"feast -c {repo} materialize {first.first.replace(microsecond=0, tzinfo=None).isoformat()} "
        "$(date -u +%FT%T) --views user_embedding")
    stamps = {p.name: p.stat().st_mtime_ns for p in [repo / USERS_SOURCE, *(repo / HOMEFEED_DIR).iterdir()]}

    again = ingest_homefeed(repo, tiny_homefeed)  # nothing new: no file is touched
    assert (again.users_new, again.users_refreshed, again.users_unchanged, again.events_new) == (0, 0, n_users, 0)
    assert again.materialize_command(repo) is None
    assert stamps == {p.name: p.stat().st_mtime_ns for p in [repo / USERS_SOURCE, *(repo / HOMEFEED_DIR).iterdir()]}

    # new activity of one user: its events are added once, and one row as of its new latest event
    more = tmp_path / "more"
    shutil.copytree(tiny_homefeed, more)
    user = events.column("user_id")[0].as_py()
    later = pd.Timestamp(latest[user]) + pd.Timedelta(hours=5)
    extra = pa.table({"user_id": [user], "pin_id": [events.column("pin_id")[0].as_py()], "action": ["save"],
                      "timestamp": pa.array([later], pa.timestamp("us", tz="UTC"))})
    pq.write_table(pa.concat_tables([events, extra.cast(events.schema)]), more / "events.parquet")
    third = ingest_homefeed(repo, more)
    assert (third.users_new, third.users_refreshed, third.events_new) == (0, 1, 1)
    rows = pq.read_table(repo / USERS_SOURCE).to_pandas()
    assert len(rows) == n_users + 1 and rows.iloc[-1]["user_id"] == user and rows.iloc[-1]["event_timestamp"] == later
    assert load_homefeed(repo / HOMEFEED_DIR).log.times.size == load_homefeed(more).log.times.size


def test_ingest_errors_name_the_file_and_row(tiny_homefeed: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(tiny_homefeed, bad)
    events = pq.read_table(bad / "events.parquet")
    pins = events.column("pin_id").to_pylist()
    pins[2] = "no-such-pin"
    pq.write_table(events.set_column(1, "pin_id", pa.array(pins)), bad / "events.parquet")
    with pytest.raises(IngestError, match=r"events.parquet, column 'pin_id', row 2: pin_id 'no-such-pin'"):
        ingest_homefeed(tmp_path / "repo", bad)
    with pytest.raises(IngestError, match="no such directory"):
        ingest_homefeed(tmp_path / "repo", tmp_path / "nope")
    assert not (tmp_path / "repo" / USERS_SOURCE).exists()
