"""The synthetic homefeed: seeded, valid, and built so that personalisation and freshness matter."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from encoders.homefeed.corpus import decayed_scores
from encoders.homefeed.dataset import load_homefeed
from encoders.homefeed.evaluate import mean_recent_vectors
from encoders.homefeed.events import split_time
from encoders.homefeed.retrieval import EvalTargets, recall_at_k, retrieve
from encoders.homefeed.synthetic import HomefeedSynthConfig, generate_events
from encoders.homefeed.synthetic_pins import structured_embeddings


def test_same_seed_same_tables_other_seed_other_tables() -> None:
    config = HomefeedSynthConfig(n_users=25, n_pins=200, events_per_user=10.0, days=30, pin_embeddings="structured",
                                 progress=False)
    _, a, ai, _ = generate_events(config)
    _, b, bi, _ = generate_events(config)
    _, c, _, _ = generate_events(replace(config, seed=1))
    assert a.equals(b) and ai.equals(bi)
    assert not a.equals(c)
    times = a.column("timestamp").to_numpy()
    assert np.all(np.diff(times.astype(np.int64)) >= 0)  # sorted by time


def test_dataset_is_valid_and_described(tiny_homefeed: Path) -> None:
    data = load_homefeed(tiny_homefeed)  # validates every table and every pin link
    meta = json.loads((tiny_homefeed / "homefeed_dataset.json").read_text())
    events = pq.read_table(tiny_homefeed / "events.parquet")
    assert meta["events"] == events.num_rows and meta["users"] == 160
    assert set(meta["events_by_action"]) == {"closeup", "click", "save", "hide"}
    assert np.allclose(np.linalg.norm(data.pin_matrix, axis=1), 1.0, atol=1e-5)
    declared = set(pq.read_table(tiny_homefeed / "user_interests.parquet").column("interest_id").to_pylist())
    assert declared and declared <= set(data.interest_ids())
    assert all(x is not None and x.startswith("cat:") for x in data.pin_interest)


def test_personalisation_and_freshness_matter(tiny_homefeed: Path) -> None:
    """Measured on the data, not assumed: recent pins beat popularity, and decayed popularity beats counts."""
    data = load_homefeed(tiny_homefeed)
    split = split_time(data.log, 10.0)
    targets = EvalTargets.build(data.log, split)
    index = np.arange(len(data.pin_ids))
    mean = recall_at_k(targets, retrieve(data.log, targets, index, 50, mean_recent_vectors(data, targets, 16),
                                         data.pin_matrix)).recall["overall"][50]
    n = len(data.pin_ids)
    fresh = recall_at_k(targets, retrieve(data.log, targets, index, 50, global_scores=decayed_scores(
        data.log, n, split, 7.0))).recall["overall"][50]
    stale = recall_at_k(targets, retrieve(data.log, targets, index, 50, global_scores=decayed_scores(
        data.log, n, split, None))).recall["overall"][50]
    assert mean > 1.5 * fresh
    assert fresh > stale


def test_structured_embeddings_cluster_by_product_type() -> None:
    from encoders.data.synthetic import build_catalogue

    c = build_catalogue(400, np.random.default_rng(0))
    emb = structured_embeddings(c, 32, seed=0)
    sim = emb @ emb.T
    same = c.type_idx[:, None] == c.type_idx[None, :]
    np.fill_diagonal(same, False)
    assert sim[same].mean() > sim[~same].mean() + 0.3


def test_config_checks_name_the_flag() -> None:
    with pytest.raises(ValueError, match="--successor-rate must be in"):
        HomefeedSynthConfig(successor_rate=1.5)
    with pytest.raises(ValueError, match="--n-pins must be > 0"):
        HomefeedSynthConfig(n_pins=0)
