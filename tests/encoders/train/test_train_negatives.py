"""Hard-negative mining: rank window, exclusion of positives and well-judged pins, cache round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from encoders.train.negatives import HardNegatives, bm25_rankings, dense_rankings, select_candidates


def test_select_candidates_window_and_exclusions() -> None:
    ranking = np.array([[9, 8, 7, 6, 5, 4, 3]])
    other = np.array([[1, 2, 3, 4, 100, 101, 102]])
    negs = select_candidates(
        ["q"], [ranking, other], positives={"q": {6}}, judged={"q": {5: 2.5, 4: 1.0}},
        window=(2, 6), exclude_grade=2.0,
    )
    # ranks 2..5: [7, 6, 5, 4] minus positive 6 and judged-relevant 5 → [7, 4]; then [3, 4, 100, 101] → 3, 100, 101
    assert negs.candidates["q"].tolist() == [7, 4, 3, 100, 101]


def test_bm25_and_dense_rankings_find_the_obvious_match() -> None:
    texts = ["steel angle bracket", "oak table", "brass door hinge", "garden hose reel"]
    r = bm25_rankings(["door hinge", "garden hose"], texts, k=2)
    assert r.shape == (2, 2) and r[0, 0] == 2 and r[1, 0] == 3
    pins = np.eye(4, dtype=np.float32)
    q = np.array([[0.1, 0.2, 0.9, 0.0]], dtype=np.float32)
    assert dense_rankings(q, pins, k=3).tolist() == [[2, 1, 0]]


def test_sample_and_cache_round_trip(tmp_path: Path) -> None:
    negs = HardNegatives({"a": np.array([1, 2, 3], dtype=np.int64), "b": np.array([], dtype=np.int64)})
    path = negs.save(tmp_path / "hn.npz")
    back = HardNegatives.load(path)
    assert back.candidates["a"].tolist() == [1, 2, 3] and back.candidates["b"].tolist() == []
    drawn = back.sample(["a", "b", "unknown"], per_query=2, rng=np.random.default_rng(0))
    assert len(drawn) == 2 and set(drawn.tolist()) <= {1, 2, 3}
