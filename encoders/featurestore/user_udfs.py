"""The user tower inside Feast: the batch UDF of ``user_embedding`` (homefeed retrieval).

Which model: the user bundle of ``searchsage homefeed export`` named by ``$SEARCHSAGE_USER_BUNDLE``
(:data:`~encoders.featurestore.contract.USER_BUNDLE_ENV`; relative = from the directory the command
runs in), scored by :class:`encoders.homefeed.onnx_scorer.OnnxUserScorer` — onnxruntime and numpy, no
torch — loaded once per process.

What it reads: the source ``data/users.parquet`` gives Feast the rows to materialise, one per (user,
time); the UDF reads the repository's homefeed dataset ``data/homefeed/`` (events, the frozen vectors of
their pins, declared interests; validated by :func:`encoders.homefeed.dataset.load_homefeed`, cached per
file stamp) to build each user's history.

**As of.** The vector stored for a source row ``(u, t)`` is the user tower applied to ``u`` *as of t*:
``u``'s positive events with a timestamp at or before ``t`` (the latest ``history`` of them), their ages
measured from ``t``, and ``u``'s declared interests as the table holds them now (they carry no time).
Events after ``t`` — later activity, or rows that arrived after the window was materialised — are never
seen, so materialising the same window again writes the same vectors, and a backfill of an old window
writes what the user looked like then. ``searchsage feast ingest --homefeed`` writes one row per user at
their latest event, so a vector is the user as of their last engagement (Feast's ``event_timestamp`` of
the record is that time); it is refreshed when new events arrive, not as the clock moves on (the ages a
request would see "now" are longer by the time since). A user without positive events before ``t`` is
embedded from the ID and interest embeddings alone (an empty history).
"""

from __future__ import annotations

import os
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encoders.featurestore.contract import DIM_ENV, USER_BUNDLE_ENV, USER_JOIN_KEY, USER_VIEW

#: Source column of the as-of time (the ``timestamp_field`` of ``raw_users``).
TS = "event_timestamp"
USER_MANIFEST = "manifest.json"


def user_bundle_path() -> str:
    """Absolute user bundle directory from ``$SEARCHSAGE_USER_BUNDLE`` (relative = from where you stand)."""
    from encoders.featurestore.udfs import env_path

    path = env_path(USER_BUNDLE_ENV)
    if path is None:
        raise FileNotFoundError(
            f"{USER_BUNDLE_ENV} is not set: point it at a user bundle written by `searchsage homefeed export` "
            f"before `feast apply` / `feast materialize` of {USER_VIEW!r}")
    if not (path / USER_MANIFEST).is_file():
        raise FileNotFoundError(
            f"{USER_BUNDLE_ENV}={os.environ[USER_BUNDLE_ENV]}: no {USER_MANIFEST} in {path}; point it at the output "
            "of `searchsage homefeed export` (relative paths are taken from the directory you run the command in)")
    return str(path)


def user_bundle_dim() -> int | None:
    """D of the user bundle from its manifest (no model load); None when ``$SEARCHSAGE_USER_BUNDLE`` is unset."""
    if not os.environ.get(USER_BUNDLE_ENV):
        return None
    import json

    manifest = json.loads((Path(user_bundle_path()) / USER_MANIFEST).read_text())
    if manifest.get("kind") != "homefeed_user":
        raise ValueError(f"{USER_BUNDLE_ENV}={os.environ[USER_BUNDLE_ENV]}: not a homefeed user bundle "
                         f"(manifest kind {manifest.get('kind')!r}); write one with `searchsage homefeed export`")
    return int(manifest["dim"])


@lru_cache(maxsize=4)
def _scorer(path: str, threads: int) -> Any:
    from encoders.homefeed.onnx_scorer import OnnxUserScorer

    return OnnxUserScorer(path, threads=threads)


def get_user_scorer() -> Any:
    """The process-wide :class:`~encoders.homefeed.onnx_scorer.OnnxUserScorer` of ``$SEARCHSAGE_USER_BUNDLE``."""
    from encoders.featurestore.udfs import THREADS_ENV

    return _scorer(user_bundle_path(), int(os.environ.get(THREADS_ENV) or 2))


def _stamp(directory: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(directory.glob("*.parquet")))


_DATA: dict[str, tuple[tuple[tuple[str, int, int], ...], Any]] = {}


def load_user_data(data_dir: str | Path) -> Any:
    """The repository's homefeed dataset (:class:`~encoders.homefeed.dataset.HomefeedData`), loaded and
    validated once per file stamp (materialisation may call the UDF once per batch)."""
    from encoders.homefeed.dataset import load_homefeed

    root = Path(data_dir)
    if not (root / "events.parquet").is_file():
        raise FileNotFoundError(f"{root / 'events.parquet'} not found: add a homefeed dataset with "
                                "`searchsage feast ingest --repo REPO --homefeed DIR`, then `feast apply` again")
    stamp = _stamp(root)
    cached = _DATA.get(str(root))
    if cached is None or cached[0] != stamp:
        _DATA[str(root)] = (stamp, load_homefeed(root))
    return _DATA[str(root)][1]


def as_of_days(stamps: pd.Series) -> np.ndarray:
    """``(N,)`` float64 days since the epoch of UTC timestamps, computed exactly as the event log's times
    (:meth:`encoders.homefeed.events.EventLog.from_table`), so an event at ``t`` and a row at ``t`` compare equal."""
    from encoders.homefeed.events import SECONDS_PER_DAY

    naive = pd.to_datetime(pd.Series(stamps), utc=True).dt.tz_localize(None).astype("datetime64[us]")
    micros = naive.to_numpy().astype(np.int64)
    return micros.astype(np.float64) / (SECONDS_PER_DAY * 1e6)


def with_users(data: Any, user_ids: list[str]) -> tuple[Any, np.ndarray]:
    """``(data', rows)``: ``data`` whose event log also lists the ``user_ids`` it lacks (no events: cold
    users), and each id's user index in it."""
    log = data.log
    index = {u: i for i, u in enumerate(log.user_ids)}
    missing = sorted({u for u in user_ids if u not in index})
    if missing:
        offsets = np.concatenate([log.offsets, np.full(len(missing), log.offsets[-1], dtype=np.int64)])
        log = replace(log, user_ids=[*log.user_ids, *missing], offsets=offsets)
        index.update({u: len(data.log.user_ids) + j for j, u in enumerate(missing)})
        data = replace(data, log=log)
    return data, np.fromiter((index[u] for u in user_ids), dtype=np.int64, count=len(user_ids))


def embed_user_rows(df: pd.DataFrame, data_dir: str | Path) -> pd.DataFrame:
    """Batch UDF of ``user_embedding``: source rows (``user_id``, ``event_timestamp``) → + ``embedding``
    (the user as of the row's time, see the module docstring) + ``model_version``."""
    from encoders.featurestore.udfs import check_dim, expected_dim

    out = df.copy()
    if len(out) == 0:
        out[USER_JOIN_KEY] = out[USER_JOIN_KEY].astype(str) if USER_JOIN_KEY in out else pd.Series([], dtype=object)
        out["embedding"] = pd.Series([], dtype=object)
        out["model_version"] = pd.Series([], dtype=object)
        return out
    scorer = get_user_scorer()
    check_dim(USER_VIEW, expected_dim(), "user", scorer.dim)
    data = load_user_data(data_dir)
    if data.dim != scorer.dim:
        raise ValueError(f"{USER_VIEW}: the pins of {data_dir} are {data.dim}-d but the user bundle "
                         f"{user_bundle_path()} was trained on {scorer.dim}-d pins; ingest the dataset the tower was "
                         f"trained on or set {USER_BUNDLE_ENV} to a bundle of this pin space ({DIM_ENV})")
    ids = out[USER_JOIN_KEY].astype(str).tolist()
    data, users = with_users(data, ids)
    # "at or before t": strictly before the next float after t (times are exact float64 days of microseconds)
    at = np.nextafter(as_of_days(out[TS]), np.inf)
    vectors = scorer.embed_users(data, users, at)
    out[USER_JOIN_KEY] = ids
    out["embedding"] = list(vectors)
    out["model_version"] = scorer.model_version
    return out
