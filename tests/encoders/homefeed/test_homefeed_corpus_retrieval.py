"""Time-decayed corpus scores and Recall@k of future engagements, checked against brute force."""

from __future__ import annotations

import numpy as np

from encoders.homefeed.corpus import decayed_scores, select_corpus
from encoders.homefeed.events import EventLog
from encoders.homefeed.retrieval import EvalTargets, pair_ranks, recall_at_k, retrieve


def _random_log(rng: np.random.Generator, users: int = 30, pins: int = 40) -> EventLog:
    counts = rng.integers(2, 12, size=users)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    times = np.concatenate([np.sort(rng.uniform(0, 30, size=c)) for c in counts])
    return EventLog([f"u{i:02d}" for i in range(users)], offsets, rng.integers(0, pins, size=counts.sum()),
                    times, rng.integers(0, 3, size=counts.sum()))


def test_decayed_scores_match_a_loop_and_select_the_top() -> None:
    log = _random_log(np.random.default_rng(0))
    at, h = 20.0, 5.0
    expected = np.zeros(40)
    for p, t in zip(log.pins, log.times, strict=True):
        if t < at:
            expected[p] += 0.5 ** ((at - t) / h)
    assert np.allclose(decayed_scores(log, 40, at, h), expected)
    counts = np.bincount(log.pins[log.times < at], minlength=40)
    assert np.array_equal(decayed_scores(log, 40, at, None), counts)
    scores = np.array([1.0, 3.0, 3.0, 0.5, 2.0])
    assert select_corpus(scores, 3).tolist() == [1, 2, 4]
    assert select_corpus(np.array([1.0, 1.0, 1.0]), 2).tolist() == [0, 1]  # ties to the lower row


def test_targets_exclude_seen_pins_and_recall_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    log = _random_log(rng)
    split = 20.0
    targets = EvalTargets.build(log, split)
    user_of = log.user_of_event()
    for q, u in enumerate(targets.users):
        seen = set(log.pins[(user_of == u) & (log.times < split)].tolist())
        future = set(log.pins[(user_of == u) & (log.times >= split)].tolist()) - seen
        got = set(targets.pair_pin[(targets.pair_user == q) & (targets.pair_action == -1)].tolist())
        assert got == future and seen  # every eval user has history
    pin_matrix = rng.standard_normal((40, 8)).astype(np.float32)
    user_vectors = rng.standard_normal((len(targets.users), 8)).astype(np.float32)
    index = np.sort(rng.choice(40, size=25, replace=False))
    top = retrieve(log, targets, index, 10, user_vectors, pin_matrix, chunk_size=7)
    overall = targets.slices()["overall"]
    hits = 0
    for q, u in enumerate(targets.users):
        seen = set(log.pins[(user_of == u) & (log.times < split)].tolist())
        cand = [p for p in index.tolist() if p not in seen]
        ranked = sorted(cand, key=lambda p: (-float(user_vectors[q] @ pin_matrix[p]), p))[:10]
        assert top[q, : len(ranked)].tolist() == ranked
        assert np.all(top[q, len(ranked):] == -1)
        hits += sum(p in ranked for p in targets.pair_pin[(targets.pair_user == q) & overall].tolist())
    result = recall_at_k(targets, top, ks=(5, 10))
    assert result.recall["overall"][10] == hits / overall.sum()
    assert result.recall["overall"][5] <= result.recall["overall"][10]
    assert result.hits["overall"][10].sum() == hits
    ranks = pair_ranks(targets, top)
    assert np.all((ranks >= 0) & (ranks <= 10))


def test_global_scores_rank_the_same_for_everyone_except_seen() -> None:
    log = _random_log(np.random.default_rng(2))
    targets = EvalTargets.build(log, 20.0)
    scores = np.arange(40, dtype=np.float64)  # pin 39 best
    top = retrieve(log, targets, np.arange(40), 5, global_scores=scores)
    user_of = log.user_of_event()
    for q, u in enumerate(targets.users):
        seen = set(log.pins[(user_of == u) & (log.times < 20.0)].tolist())
        assert top[q].tolist() == [p for p in range(39, -1, -1) if p not in seen][:5]
