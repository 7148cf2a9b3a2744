"""Pin engagement statistics: what they count, the split filter, out-of-fold training rows, the source file
and the conditional Feast view."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoders.relevance.engagement_stats import (
    SOURCE_FILE,
    STAT_COLUMNS,
    EngagementStatsConfig,
    out_of_fold_stats,
    pin_engagement_stats,
    query_folds,
    stats_matrix,
    write_stats_source,
)
from encoders.relevance.pairs import split_of

ROOT = Path(__file__).resolve().parents[3]
T0 = pd.Timestamp("2024-03-31T00:00:00Z")


def _queries(split: str, n: int) -> list[str]:
    return [q for q in (f"query {i}" for i in range(500)) if split_of(q) == split][:n]


def _eng(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    """(query, pin, action, days before T0) rows → an engagements frame."""
    return pd.DataFrame({
        "query": [r[0] for r in rows], "pin_id": [r[1] for r in rows], "action": [r[2] for r in rows],
        "timestamp": pd.to_datetime([T0 - pd.Timedelta(days=r[3]) for r in rows], utc=True),
    })


def test_counts_window_rate_and_only_train_queries() -> None:
    (a, b), (ev,), (va,) = _queries("train", 2), _queries("eval", 1), _queries("validation", 1)
    eng = _eng([(a, "p1", "save", 0), (a, "p1", "long_click", 40), (b, "p1", "save", 5), (b, "p2", "long_click", 1),
                (ev, "p1", "save", 0), (ev, "p3", "save", 0), (va, "p1", "save", 0), (va, "p4", "save", 0)])
    stats = pin_engagement_stats(eng, EngagementStatsConfig(window_days=30, smoothing=1.0)).set_index("pin_id")
    assert sorted(stats.index) == ["p1", "p2"]  # p3/p4: only eval/validation queries engaged them
    p1 = stats.loc["p1"]
    assert (p1.eng_count, p1.eng_save, p1.eng_long_click, p1.eng_count_30d, p1.eng_distinct_queries) == (3, 2, 1, 2, 2)
    assert p1.eng_per_query == pytest.approx(3 / (2 + 1))
    assert stats.loc["p2", "eng_count"] == 1 and stats.loc["p2", "eng_per_query"] == pytest.approx(0.5)
    m = stats_matrix(stats.reset_index(), ["p2", "nope", "p1"])
    assert m.shape == (3, len(STAT_COLUMNS)) and not m[1].any() and m[2, 0] == 3


def test_training_pair_never_sees_its_own_engagement() -> None:
    """The leakage guard: a train pair's statistics exclude its own query (and its whole fold)."""
    cfg = EngagementStatsConfig(folds=5)
    qs = _queries("train", 40)
    folds = query_folds(qs, cfg.folds)
    q, other = qs[0], next(x for x, f in zip(qs, folds, strict=True) if f != folds[0])
    rows = [(q, "own", "long_click", 1)] * 7 + [(other, "shared", "save", 1)] * 4 + [(q, "shared", "save", 1)] * 3
    eng = _eng(rows)
    oof = out_of_fold_stats(eng, [q, q, other], ["own", "shared", "own"], cfg)
    served = stats_matrix(pin_engagement_stats(eng, cfg), ["own", "shared"])
    assert served[0, 0] == 7 and served[1, 0] == 7  # online, the label pair's engagement counts
    assert not oof[0].any()  # (q, own): only q engaged it → nothing left out of fold
    assert oof[1, 0] == pytest.approx(4 * cfg.folds / (cfg.folds - 1))  # (q, shared): only `other`, rescaled
    assert oof[2, 0] == pytest.approx(7 * cfg.folds / (cfg.folds - 1))  # (other, own): q is in another fold
    # the pair's own label can change freely without moving its features
    more = _eng(rows + [(q, "own", "long_click", 1)] * 50)
    assert np.array_equal(out_of_fold_stats(more, [q], ["own"], cfg), oof[:1])


def test_folds_are_balanced_and_deterministic() -> None:
    qs = _queries("train", 300)
    f = query_folds(qs, 5)
    assert np.array_equal(f, query_folds(list(reversed(qs)), 5)[::-1])
    assert np.bincount(f, minlength=5).min() > 30


def test_source_file_is_idempotent(tmp_path: Path) -> None:
    a = _queries("train", 1)[0]
    stats = pin_engagement_stats(_eng([(a, "p1", "save", 0), (a, "p2", "save", 0)]))
    first = write_stats_source(tmp_path, stats, datetime(2024, 5, 1, tzinfo=timezone.utc))
    assert first.changed and first.pins == 2 and first.path == tmp_path / SOURCE_FILE
    frame = pd.read_parquet(first.path)
    assert list(frame.columns) == ["pin_id", "event_timestamp", *STAT_COLUMNS]
    assert frame["eng_count"].dtype == np.int64 and frame["eng_per_query"].dtype == np.float64
    mtime = first.path.stat().st_mtime_ns
    again = write_stats_source(tmp_path, stats, datetime.now(timezone.utc))
    assert not again.changed and first.path.stat().st_mtime_ns == mtime
    assert pd.read_parquet(first.path)["event_timestamp"].iloc[0] == pd.Timestamp("2024-05-01", tz="UTC")
    changed = write_stats_source(tmp_path, stats.assign(eng_count=5.0), datetime.now(timezone.utc))
    assert changed.changed and (pd.read_parquet(first.path)["eng_count"] == 5).all()


def _definitions(repo: Path, name: str) -> dict:
    spec = importlib.util.spec_from_file_location(name, repo / "definitions.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return vars(mod)


def test_view_is_declared_only_with_its_source(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    bare = _definitions(repo, "ss_defs_bare")
    assert "pin_engagement" not in bare and {"ranker_query", "ranker_pins", "pin_embedding"} <= set(bare)
    a = _queries("train", 1)[0]
    write_stats_source(repo, pin_engagement_stats(_eng([(a, "p1", "save", 0)])),
                       datetime.now(timezone.utc) - timedelta(minutes=1))
    full = _definitions(repo, "ss_defs_full")
    view = full["pin_engagement"]
    assert [f.name for f in view.features] == list(STAT_COLUMNS)
    assert view.entity_columns[0].name == "pin_id"
    assert full["ranker_pin_engagement"].name == "ranker_pin_engagement"
