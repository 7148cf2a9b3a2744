"""BM25 retrieval, reciprocal-rank fusion and the pin_tower.json reuse rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from encoders.eval.baselines import BM25Retriever, pin_tower_matches_zero_shot, reciprocal_rank_fusion

TITLES = [
    "Everbilt 3 in. Zinc-Plated Steel Angle Bracket",
    "Simpson Strong-Tie 12-Gauge Angle",
    "BEHR Premium Plus 1-gal. Ultra Pure White Flat Interior Paint",
    "Delta Foundations Single-Handle Bathroom Faucet in Chrome",
    "Husky 52 in. 18-Drawer Tool Chest and Cabinet Combo",
    "Hampton Bay 52 in. Indoor Ceiling Fan with Light Kit",
]


def test_bm25_finds_exact_title_query_first() -> None:
    bm25 = BM25Retriever(TITLES)
    queries = [t.upper() for t in TITLES]  # case must not matter
    ids, scores = bm25.search(queries, 3)
    np.testing.assert_array_equal(ids[:, 0], np.arange(len(TITLES)))
    assert np.all(scores[:, 0] > 0)


def test_bm25_no_overlap_returns_nothing() -> None:
    bm25 = BM25Retriever(TITLES)
    ids, scores = bm25.search(["the and of", "xylophone", "angle bracket"], 4)
    assert np.all(ids[:2] == -1) and np.all(scores[:2] == 0)
    assert set(ids[2][ids[2] >= 0]) == {0, 1}  # only titles sharing a term are returned
    assert ids[2, 0] == 0  # both terms match the first title


def test_reciprocal_rank_fusion() -> None:
    a = np.array([[1, 2, -1], [0, 1, 2]])
    b = np.array([[2, 0, 1], [0, 2, 1]])
    fused = reciprocal_rank_fusion([a, b], 3, c=1.0)
    # query 0: 2 → 1/3 + 1/2, 1 → 1/2 + 1/4, 0 → 1/3
    np.testing.assert_array_equal(fused[0], [2, 1, 0])
    # query 1: rows 1 and 2 tie (1/3 + 1/4 each) → the lower row first
    np.testing.assert_array_equal(fused[1], [0, 1, 2])


def test_pin_tower_json_decides_reuse(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    assert not pin_tower_matches_zero_shot(tmp_path, model)  # no pin_tower.json
    (tmp_path / "pin_tower.json").write_text(json.dumps({"base_model": str(model), "pooling": "mean"}))
    assert pin_tower_matches_zero_shot(tmp_path, model)
    assert not pin_tower_matches_zero_shot(tmp_path, tmp_path / "other")
    (tmp_path / "pin_tower.json").write_text(json.dumps({"base_model": str(model), "pooling": "cls"}))
    assert not pin_tower_matches_zero_shot(tmp_path, model)
    for runtime, reused in (("torch", True), ("onnx-fp32", True), ("onnx-int8", False)):
        (tmp_path / "pin_tower.json").write_text(json.dumps({"base_model": str(model), "pooling": "mean",
                                                             "runtime": runtime}))
        assert pin_tower_matches_zero_shot(tmp_path, model) is reused, runtime
