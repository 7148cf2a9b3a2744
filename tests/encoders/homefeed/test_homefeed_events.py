"""Event log grouping, split time, vocabularies, interest bags and the history window (no leakage)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pytest

from encoders.homefeed.events import EventLog, IdVocab, InterestBags, format_time, parse_time, split_time
from encoders.homefeed.features import build_batch, history_window

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
PINS = [f"p{i}" for i in range(6)]


def _log() -> EventLog:
    rows = [("b", "p1", "click", 3), ("a", "p0", "save", 2), ("a", "p2", "hide", 1), ("a", "p3", "closeup", 0),
            ("b", "p4", "save", 1), ("a", "p5", "click", 5), ("b", "p0", "closeup", 4)]
    return EventLog.from_table(pa.table({
        "user_id": [r[0] for r in rows], "pin_id": [r[1] for r in rows], "action": [r[2] for r in rows],
        "timestamp": pa.array([T0 + timedelta(days=r[3]) for r in rows], pa.timestamp("us", tz="UTC"))}), PINS)


def test_events_grouped_by_user_sorted_by_time_hides_dropped() -> None:
    log = _log()
    assert log.user_ids == ["a", "b"]
    assert log.offsets.tolist() == [0, 3, 6]
    assert [PINS[p] for p in log.pins] == ["p3", "p0", "p5", "p4", "p1", "p0"]
    assert np.all(np.diff(log.times[:3]) > 0) and np.all(np.diff(log.times[3:]) > 0)
    t2 = parse_time((T0 + timedelta(days=2, hours=12)).isoformat())
    assert log.count_before(t2).tolist() == [2, 1]
    assert split_time(log, 1.0) == pytest.approx(log.times.max() - 1.0)
    assert format_time(parse_time("2024-03-01T00:00:00Z")) == "2024-03-01T00:00:00+00:00"
    with pytest.raises(ValueError, match="--split-time must be an ISO timestamp"):
        parse_time("tomorrow", "--split-time")


def test_vocabularies_indexed_and_hashed() -> None:
    v = IdVocab(["x", "y"])
    assert v.size == 3 and v.rows(["y", "x", "new"]).tolist() == [2, 1, 0]
    h = IdVocab(buckets=50)
    rows = h.rows(["x", "y", "x"])
    assert h.size == 51 and rows[0] == rows[2] and np.all((rows >= 1) & (rows <= 50))
    assert IdVocab.from_dict(h.to_dict()).rows(["y"]).tolist() == [rows[1]]  # stable across processes


def test_interest_bags_are_means() -> None:
    vocab = IdVocab(["i1", "i2", "i3"])
    table = pa.table({"user_id": ["a", "a", "b", "zzz"], "interest_id": ["i1", "i3", "unknown", "i2"]})
    bags = InterestBags.build(["a", "b", "c"], table, vocab, max_per_user=4)
    assert bags.rows[0].tolist() == [1, 3, 0, 0]
    assert bags.weights.sum(axis=1).tolist() == [1.0, 0.0, 0.0]


def test_history_window_is_left_padded_and_strictly_before_the_request() -> None:
    log = _log()
    ref = log.times[[2, 5]]  # each user's last event: its history is everything before it
    pins, mask, age, _ = history_window(log, np.array([0, 1]), np.array([2, 2]), ref, history=3)
    assert mask.tolist() == [[0, 1, 1], [0, 1, 1]]
    assert [PINS[p] for p in pins[0, 1:]] == ["p3", "p0"]
    assert np.all(age[mask > 0] > 0)  # strictly earlier events only
    assert age[0, 1] > age[0, 2]  # oldest first
    batch = build_batch(log, np.array([0, 1]), np.array([2, 2]), ref, 3, np.array([7, 8]),
                        InterestBags(np.zeros((2, 2), np.int64), np.zeros((2, 2), np.float32)))
    inputs = batch.inputs(np.eye(6, dtype=np.float32))
    assert inputs["hist_vectors"].shape == (2, 3, 6)
    assert np.all(inputs["hist_vectors"][:, 0] == 0)  # padding is the zero vector
    assert inputs["user_row"].tolist() == [7, 8] and inputs["condition_row"].tolist() == [0, 0]
