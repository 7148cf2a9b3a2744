"""The scale check's code path at a small size: every user embedded, memory reported."""

from __future__ import annotations

import numpy as np

from encoders.homefeed.scale import scale_check, synthetic_scale_data


def test_scale_data_is_grouped_and_clustered() -> None:
    data = synthetic_scale_data(500, n_pins=200, dim=8, n_types=10)
    log = data.log
    assert log.n_users == 500 and log.offsets[-1] == len(log.pins)
    assert np.all(np.diff(log.offsets) >= 1)
    user_of = log.user_of_event()
    # a user's events stay in one cluster
    types = log.pins % 10
    assert all(len(set(types[user_of == u].tolist())) == 1 for u in range(0, 500, 50))


def test_scale_check_small() -> None:
    r = scale_check(n_users=1500, steps=2, batch_size=64, n_pins=300, dim=8, threads=1, embed_batch=400,
                    progress=False)
    assert r["embeddings"]["shape"] == [1500, 8] and r["embeddings"]["finite"]
    assert abs(r["embeddings"]["mean_norm"] - 1.0) < 1e-4
    assert r["user_table_rows"] > 1400  # one row per user who trained (+ the unknown row)
    assert r["peak_rss_mb"] >= max(r["rss_mb"].values()) - 1.0
    assert set(r["seconds"]) == {"build", "train", "embed_all"}
