"""Per-arm rankings for the simulator: BM25, embeddings, blend, engagement centroids, arena encoding."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from abtest.simulate.dataset import arena_from_rankings
from abtest.simulate.rankings import (
    blend_rankings,
    bm25_pin_rankings,
    embedding_rankings,
    engagement_centroid_embeddings,
)


def test_bm25_finds_matching_text() -> None:
    r = bm25_pin_rankings(["a", "b", "c"], ["red oak chair", "steel hammer", "oak table"], ["oak chair", "zzz"], k=3)
    assert r["oak chair"][0] == "a" and set(r["oak chair"]) == {"a", "c"}
    assert r["zzz"] == []  # no term matches: nothing retrieved


def test_embedding_and_blend() -> None:
    pins = np.eye(4, dtype=np.float32)
    q = np.array([[0.1, 0.9, 0.2, 0.0]], dtype=np.float32)
    r = embedding_rankings(["p0", "p1", "p2", "p3"], pins, ["q"], q, k=3)
    assert r["q"] == ["p1", "p2", "p0"]
    b = blend_rankings({"q": ["p0", "p1"]}, {"q": ["p1", "p2"]}, k=3)
    assert b["q"][0] == "p1" and set(b["q"]) == {"p0", "p1", "p2"}


def test_centroid_embeddings() -> None:
    eng = pa.table({"query": ["q", "q", "r"], "pin_id": ["p0", "p1", "zz"]})
    emb, has = engagement_centroid_embeddings(eng, ["p0", "p1"], np.eye(2, dtype=np.float32), ["q", "r"])
    assert has.tolist() == [True, False]
    np.testing.assert_allclose(emb[0], [2**-0.5, 2**-0.5], rtol=1e-6)


def test_arena_relevance_unjudged_is_zero() -> None:
    arena = arena_from_rankings({"control": {"q": ["x", "y"]}, "treatment": {"q": ["y"]}},
                                {"q": {"x": 1.0, "z": 3.0}}, ["q"], k=3)
    assert arena.relevance["control"][0].tolist() == [0.0, 0.0, 0.0]  # grade 1 = scale minimum, y unjudged
    assert arena.pins["treatment"][0].tolist()[1:] == [-1, -1]
    assert arena.popularity.sum() == 1.0
