"""Training pairs (eval split excluded), per-pin cap, multitask blend, batches, sampler state."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pytest

from encoders.data.split import is_eval_query, is_validation_query
from encoders.train.sampler import PairSampler, TrainingPairs, training_pairs


def _pairs(queries: list[str], pins: list[int], tasks: list[str]) -> TrainingPairs:
    return TrainingPairs(
        queries=np.asarray(queries, dtype=object), pin_idx=np.asarray(pins, dtype=np.int64),
        tasks=np.asarray(tasks, dtype=object), weights=np.ones(len(pins), dtype=np.float32),
    )


def _engagements(rows: list[tuple[str, str, str]]) -> pa.Table:
    ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return pa.table({
        "query": [r[0] for r in rows], "pin_id": [r[1] for r in rows], "task": [r[2] for r in rows],
        "action": ["save"] * len(rows), "timestamp": pa.array([ts] * len(rows), pa.timestamp("us", tz="UTC")),
    })


def test_training_pairs_drop_eval_queries_and_add_graded_positives() -> None:
    queries = [f"query {i}" for i in range(60)]
    eval_q = [q for q in queries if is_eval_query(q)]
    assert eval_q, "the fixture needs at least one eval query"
    eng = _engagements([(q, "a", "shopping") for q in queries])
    pairs = training_pairs(eng, {"a": 0, "b": 1})
    assert len(pairs) == len(queries) - len(eval_q)
    assert not set(eval_q) & set(pairs.queries.tolist())
    judg = pa.table({"query": ["query 1", "query 1", "query 2"], "pin_id": ["b", "a", "b"], "grade": [2.4, 3.0, 1.0]})
    graded = training_pairs(eng, {"a": 0, "b": 1}, judg, extra_positive_grade=2.33, extra_positive_weight=0.25)
    extra = [(q, p, w) for q, p, w in zip(graded.queries, graded.pin_idx, graded.weights, strict=True) if w != 1.0]
    assert extra == ([("query 1", 1, 0.25)] if not is_eval_query("query 1") else [])
    with pytest.raises(ValueError, match=r"row 0: pin_id 'zzz'"):
        training_pairs(_engagements([("x", "zzz", "organic")]), {"a": 0})


def test_hold_out_validation_drops_validation_queries_and_keeps_the_rest() -> None:
    queries = [f"query {i}" for i in range(80)]
    val_q = {q for q in queries if is_validation_query(q)}
    eval_q = {q for q in queries if is_eval_query(q)}
    assert val_q and eval_q and not val_q & eval_q, "the fixture needs disjoint validation and eval queries"
    eng = _engagements([(q, "a", "shopping") for q in queries])
    judg = pa.table({"query": sorted(val_q), "pin_id": ["b"] * len(val_q), "grade": [3.0] * len(val_q)})
    kept = set(training_pairs(eng, {"a": 0, "b": 1}, judg, 2.33, hold_out_validation=True).queries.tolist())
    assert kept == set(queries) - val_q - eval_q  # graded positives of validation queries stay out too
    assert set(training_pairs(eng, {"a": 0, "b": 1}).queries.tolist()) == set(queries) - eval_q


def test_cap_limits_each_pin_per_epoch() -> None:
    # pin 0 appears 50 times, others once
    pins = [0] * 50 + list(range(1, 31))
    pairs = _pairs([f"q{i}" for i in range(len(pins))], pins, ["organic"] * len(pins))
    s = PairSampler(pairs, batch_size=4, seed=1, max_per_pin=5, drop_last=False)
    for epoch in (0, 1):
        counts = Counter(pairs.pin_idx[s.epoch_order(epoch)].tolist())
        assert counts[0] == 5
        assert all(counts[p] == 1 for p in range(1, 31))
    uncapped = PairSampler(pairs, batch_size=4, max_per_pin=None)
    assert Counter(pairs.pin_idx[uncapped.epoch_order(0)].tolist())[0] == 50


def test_blend_proportions_follow_task_weights() -> None:
    n_org, n_shop = 900, 100
    tasks = ["organic"] * n_org + ["shopping"] * n_shop
    pairs = _pairs([f"q{i}" for i in range(1000)], list(range(1000)), tasks)
    order = PairSampler(pairs, batch_size=10, seed=0).epoch_order(0)  # default 50/50
    share = Counter(pairs.tasks[order].tolist())
    assert share["organic"] == share["shopping"] == 500
    order = PairSampler(pairs, batch_size=10, task_weights={"organic": 0.8, "shopping": 0.2}).epoch_order(0)
    share = Counter(pairs.tasks[order].tolist())
    assert share["organic"] == 800 and share["shopping"] == 200
    only = _pairs(["a", "b", "c"], [0, 1, 2], ["shopping"] * 3)
    assert PairSampler(only, batch_size=2).task_weights == {"shopping": 1.0}


def test_batches_have_no_duplicate_pair_and_are_deterministic() -> None:
    queries = ["same"] * 6 + [f"q{i}" for i in range(26)]
    pins = [7] * 6 + list(range(26))
    pairs = _pairs(queries, pins, ["organic"] * len(pins))
    s = PairSampler(pairs, batch_size=4, seed=3, max_per_pin=None, drop_last=False)
    batches = s._make_batches(0)
    assert sum(len(b.queries) for b in batches) == len(pins)
    for b in batches:
        keys = list(zip(b.queries, b.pin_idx.tolist(), strict=True))
        assert len(keys) == len(set(keys))
    again = PairSampler(pairs, batch_size=4, seed=3, max_per_pin=None, drop_last=False)._make_batches(0)
    assert [b.queries for b in batches] == [b.queries for b in again]
    other = PairSampler(pairs, batch_size=4, seed=4, max_per_pin=None, drop_last=False)._make_batches(0)
    assert [b.queries for b in batches] != [b.queries for b in other]


def test_state_dict_resumes_at_the_next_batch() -> None:
    pairs = _pairs([f"q{i}" for i in range(20)], list(range(20)), ["organic"] * 20)
    a = PairSampler(pairs, batch_size=4, seed=0)
    it = iter(a)
    seen = [next(it).queries for _ in range(7)]  # crosses into epoch 1 (5 batches per epoch)
    state = a.state_dict()
    assert state == {"epoch": 1, "batch_index": 2, "seed": 0}
    b = PairSampler(pairs, batch_size=4, seed=0)
    b.load_state_dict(state)
    assert next(iter(b)).queries == next(it).queries
    assert seen[0] != seen[5]  # epochs are reshuffled
    with pytest.raises(ValueError, match="seed"):
        PairSampler(pairs, batch_size=4, seed=9).load_state_dict(state)
