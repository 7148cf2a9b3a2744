"""Training writes a run that learns, resumes where it stopped, and embeds every user deterministically."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from encoders.homefeed.dataset import HomefeedData, load_homefeed
from encoders.homefeed.embed import compute_user_embeddings, embed_requests
from encoders.homefeed.features import build_batch
from encoders.homefeed.run import load_run
from encoders.homefeed.tower import UserTower
from encoders.homefeed.train import Examples, train_homefeed
from encoders.train.loss import in_batch_softmax_loss


def _held_loss(tower: UserTower, data: HomefeedData, run_dir: Path, n: int = 512) -> float:
    """Mean in-batch softmax loss of ``tower`` on a fixed sample of training examples (batches of 64)."""
    run = load_run(run_dir)
    ex = Examples.build(data, run.split)
    pick = np.random.default_rng(0).choice(len(ex.events), size=n, replace=False)
    user_rows, bags = run.user_vocab.rows(data.log.user_ids), data.bags(run.interest_vocab)
    pins = torch.tensor(data.pin_matrix)
    losses = []
    with torch.no_grad():
        for s in range(0, n, 64):
            idx = pick[s : s + 64]
            target = data.log.pins[ex.events[idx]]
            batch = build_batch(data.log, ex.users[idx], ex.n_before[idx], data.log.times[ex.events[idx]],
                                run.config.history, user_rows, bags)
            z = tower(**{k: torch.from_numpy(v) for k, v in batch.inputs(data.pin_matrix).items()})
            ids = torch.from_numpy(target)
            losses.append(float(in_batch_softmax_loss(z, pins[ids], 0.05, ids).loss))
    return float(np.mean(losses))


def test_training_lowers_the_loss_and_writes_the_run_directory(tiny_homefeed: Path, tmp_path: Path,
                                                              train_config: Callable[..., Any]) -> None:
    config = train_config(tiny_homefeed, tmp_path / "run", max_steps=80, epochs=5.0)
    result = train_homefeed(config)
    data = load_homefeed(tiny_homefeed)
    torch.manual_seed(config.seed)
    untrained = UserTower(load_run(tmp_path / "run").config).eval()
    assert _held_loss(load_run(tmp_path / "run").tower, data, tmp_path / "run") < \
        _held_loss(untrained, data, tmp_path / "run") - 0.1
    names = {p.name for p in (tmp_path / "run").iterdir()}
    assert {"tower_config.json", "tower.pt", "vocab.json", "checkpoint.pt", "train_log.jsonl",
            "train_summary.json"} <= names
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == result.steps == 80 and summary["stopped_by"] == "max_steps"
    assert summary["parameters"]["id_tables"] > 0
    log_lines = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert len(log_lines) == 16 and json.loads(log_lines[-1])["step"] == 80


def test_training_examples_never_cross_the_split(tiny_homefeed: Path) -> None:
    data = load_homefeed(tiny_homefeed)
    split = float(data.log.times.max()) - 10.0
    ex = Examples.build(data, split)
    assert np.all(data.log.times[ex.events] < split)
    assert np.all(ex.n_before >= 1)  # every example has history
    assert np.all(ex.n_before <= ex.user_n_train[ex.users])


def test_resume_continues_from_the_checkpoint(tiny_homefeed: Path, tmp_path: Path, train_config: Callable[..., Any]) -> None:
    out = tmp_path / "run"
    train_homefeed(train_config(tiny_homefeed, out, max_steps=10, epochs=1.0))
    resumed = train_homefeed(train_config(tiny_homefeed, out, max_steps=16, epochs=1.0), resume=True)
    assert resumed.steps == 16
    steps = [json.loads(x)["step"] for x in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 16]


def test_bad_options_name_the_flag(tiny_homefeed: Path, tmp_path: Path, train_config: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="--id-dropout must be in"):
        train_config(tiny_homefeed, tmp_path, id_dropout=1.5)
    with pytest.raises(ValueError, match="--batch-size must be >= 2"):
        train_config(tiny_homefeed, tmp_path, batch_size=1)
    with pytest.raises(ValueError, match="--split-time must be an ISO timestamp"):
        train_config(tiny_homefeed, tmp_path, split_time="soon")
    with pytest.raises(ValueError, match="training examples before the split"):
        train_homefeed(train_config(tiny_homefeed, tmp_path / "r", split_time="2000-01-01"))


def test_compute_user_embeddings_every_user_batched_and_deterministic(tiny_homefeed: Path, tiny_run: Path) -> None:
    a = compute_user_embeddings(tiny_run, tiny_homefeed, batch_size=7, threads=1, progress=False)
    b = compute_user_embeddings(tiny_run, tiny_homefeed, batch_size=500, threads=1, progress=False)
    data = load_homefeed(tiny_homefeed)
    assert a.user_ids == data.log.user_ids
    assert a.vectors.shape == (data.log.n_users, data.dim) and a.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(a.vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(a.vectors, b.vectors, atol=1e-6)
    table = a.to_table()
    assert table.column_names == ["user_id", "embedding", "model_version"] and table.num_rows == len(a.user_ids)
    earlier = compute_user_embeddings(tiny_run, tiny_homefeed, at="2024-01-20T00:00:00Z", threads=1, progress=False)
    assert not np.allclose(earlier.vectors, a.vectors)  # fewer events count
    cond = compute_user_embeddings(tiny_run, tiny_homefeed, interest_id="cat:kitchen", threads=1, progress=False)
    assert cond.interest_id == "cat:kitchen" and not np.allclose(cond.vectors, a.vectors)
    with pytest.raises(ValueError, match="not in the run's interest vocabulary"):
        compute_user_embeddings(tiny_run, tiny_homefeed, interest_id="cat:nope", progress=False)


def test_embed_requests_at_per_request_times_matches_scalar(tiny_homefeed: Path, tiny_run: Path) -> None:
    run, data = load_run(tiny_run), load_homefeed(tiny_homefeed)
    users = np.arange(0, data.log.n_users, 3)
    scalar = embed_requests(run, data, users, run.split)
    per_request = embed_requests(run, data, users, np.full(len(users), run.split))
    assert np.allclose(scalar, per_request, atol=1e-6)


def test_hashed_user_ids(tiny_homefeed: Path, tmp_path: Path, train_config: Callable[..., Any]) -> None:
    train_homefeed(train_config(tiny_homefeed, tmp_path / "run", max_steps=3, user_id_buckets=50))
    run = load_run(tmp_path / "run")
    assert run.config.user_rows == 51 and run.user_vocab.buckets == 50
    vectors = compute_user_embeddings(tmp_path / "run", tiny_homefeed, threads=1, progress=False).vectors
    assert np.isfinite(vectors).all()
