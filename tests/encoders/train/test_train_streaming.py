"""``--stream``: engagements read by row groups, with the per-pin cap and the task blend still holding."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from encoders.data.split import is_eval_query
from encoders.train.config import TrainConfig
from encoders.train.sampler import PairSampler, training_pairs
from encoders.train.streaming import StreamingSampler, row_groups, scan_engagements
from encoders.train.trainer import train

N_PINS = 300


def _engagements(path: Path, n: int = 12_000, seed: int = 0, row_group: int = 1_000) -> list[str]:
    """``n`` engagements over ``N_PINS`` pins with Zipf popularity, 80% organic / 20% shopping,
    written in row groups of ``row_group`` rows; returns the pin ids."""
    rng = np.random.default_rng(seed)
    pins = [f"p{i}" for i in range(N_PINS)]
    pop = 1.0 / np.arange(1, N_PINS + 1) ** 1.1
    pin = rng.choice(N_PINS, size=n, p=pop / pop.sum())
    words = [f"w{i}" for i in range(60)]
    queries = [f"{words[a]} {words[b]}" for a, b in rng.integers(0, 60, size=(n, 2))]
    ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
    table = pa.table({
        "query": queries, "pin_id": [pins[i] for i in pin],
        "task": np.where(rng.random(n) < 0.8, "organic", "shopping").tolist(),
        "action": ["click"] * n, "timestamp": pa.array([ts] * n, pa.timestamp("us", tz="UTC")),
    })
    pq.write_table(table, path, row_group_size=row_group)
    return pins


def _epoch(sampler: StreamingSampler | PairSampler) -> list:
    it = iter(sampler)
    return [next(it) for _ in range(sampler.batches_per_epoch())]


def test_cap_and_blend_hold_like_the_in_memory_sampler(tmp_path: Path) -> None:
    path = tmp_path / "engagements.parquet"
    pin_ids = _engagements(path)
    assert len(row_groups(path)) == 12
    streamed = scan_engagements(path, pin_ids, None, None, 0.5, False, seed=0)
    sampler = StreamingSampler(streamed, batch_size=64, seed=0, max_per_pin=15, buffer=2_000)
    batches = []
    for b in iter(sampler):  # exactly one epoch: until the epoch counter moves
        if sampler.epoch > 0:
            break
        batches.append(b)
    pins = Counter(p for b in batches for p in b.pin_idx.tolist())
    tasks = Counter(t for b in batches for t in b.tasks)
    assert max(pins.values()) <= 15  # the cap holds strictly
    share = tasks["organic"] / sum(tasks.values())
    assert 0.5 <= share < 0.56, tasks  # the default 50/50 blend from an 80/20 stream (the cap after it shifts it)
    assert all(len(b.queries) == 64 for b in batches)
    assert all(len(set(zip(b.queries, b.pin_idx.tolist(), strict=True))) == 64 for b in batches)
    assert not any(is_eval_query(q) for b in batches for q in b.queries)

    # against the in-memory sampler of the same pairs: epoch size and per-pin counts
    table = pq.read_table(path)
    pairs = training_pairs(table, {p: i for i, p in enumerate(pin_ids)})
    assert len(streamed) == len(pairs)
    memory = PairSampler(pairs, 64, seed=0, max_per_pin=15)
    order = memory.epoch_order(0)
    mem_pins = Counter(pairs.pin_idx[order].tolist())
    mem_share = float(np.mean(pairs.tasks[order] == "organic"))
    assert abs(share - mem_share) < 0.015, (share, mem_share)  # the in-memory sampler shifts it alike
    assert abs(sampler.expected_pairs() - len(order)) < 0.1 * len(order)
    assert abs(len(batches) - memory.batches_per_epoch()) <= 0.05 * memory.batches_per_epoch()
    assert len(batches) in (sampler.batches_per_epoch(), sampler.batches_per_epoch() - 1)
    diff = np.mean([abs(pins.get(p, 0) - mem_pins.get(p, 0)) for p in range(N_PINS)])
    assert diff < 2.0, diff  # mean |streamed − in-memory| appearances per pin (cap 15)
    # the known positives: the same pins per query as the in-memory dict
    known = pairs.positives_by_query()
    assert all(streamed.known.get(q) == s for q, s in known.items())
    assert streamed.known.get("no such query", set()) == set()


def test_in_memory_blend_is_a_uniform_subset_as_the_stream_assumes(tmp_path: Path) -> None:
    """Averaged over epochs, each pin's appearances in the in-memory sampler equal the streamed
    expectation ``Σ_t n[t, p]·m[t, p]`` (a subsampled task used to favour its capped pins)."""
    path = tmp_path / "engagements.parquet"
    pin_ids = _engagements(path)
    streamed = scan_engagements(path, pin_ids, None, None, 0.5, False, seed=0)
    expected = (streamed.counts * StreamingSampler(streamed, 64, 0, 15).multiplicity).sum(axis=0)
    pairs = training_pairs(pq.read_table(path), {p: i for i, p in enumerate(pin_ids)})
    memory = PairSampler(pairs, 64, seed=0, max_per_pin=15)
    mean = np.mean([np.bincount(pairs.pin_idx[memory.epoch_order(e)], minlength=N_PINS) for e in range(20)], axis=0)
    assert np.abs(mean - expected).mean() < 0.35, np.abs(mean - expected).mean()
    assert abs(mean.sum() - expected.sum()) < 0.01 * expected.sum()


def test_streamed_epochs_are_deterministic_and_resume_mid_epoch(tmp_path: Path) -> None:
    path = tmp_path / "engagements.parquet"
    pin_ids = _engagements(path, n=3_000, row_group=500)
    streamed = scan_engagements(path, pin_ids, None, None, 0.5, False, seed=0)
    a = StreamingSampler(streamed, 32, seed=3, max_per_pin=10, buffer=256)
    first = list(itertools.islice(iter(a), a.batches_per_epoch() + 5))  # into the second epoch
    assert a.epoch == 1
    b = StreamingSampler(streamed, 32, seed=3, max_per_pin=10, buffer=256)
    b.load_state_dict({"epoch": 0, "batch_index": 7, "seed": 3})
    again = list(itertools.islice(iter(b), len(first) - 7))
    assert [x.queries for x in again] == [x.queries for x in first[7:]]
    other = StreamingSampler(streamed, 32, seed=4, max_per_pin=10, buffer=256)
    assert next(iter(other)).queries != first[0].queries


def test_unknown_pin_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "engagements.parquet"
    pin_ids = _engagements(path, n=500, row_group=100)
    with pytest.raises(ValueError, match=r"engagements row \d+: pin_id 'p1' is not in pins.parquet"):
        scan_engagements(path, [p for p in pin_ids if p != "p1"], None, None, 0.5, False, seed=0)
    with pytest.raises(ValueError, match="--hard-negatives cannot be used with --stream"):
        TrainConfig(data="d", out="o", stream=True, hard_negatives=2)


def test_training_with_stream_resumes_exactly(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from encoders.data.schema import write_table

    data = tmp_path / "data"
    data.mkdir()
    pin_ids = _engagements(data / "engagements.parquet", n=2_000, row_group=250)
    emb = np.random.default_rng(1).normal(size=(N_PINS, 32)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    write_table(pa.table({"pin_id": pin_ids, "text": [f"item {p}" for p in pin_ids],
                          "embedding": pa.array(emb.tolist(), pa.list_(pa.float32()))}), data / "pins.parquet", "pins")
    kw = dict(data=str(data), base_model=str(tiny_bert_dir), batch_size=16, lr=1e-3, readout_lr=1e-2, log_every=2,
              progress=False, threads=1, schedule_steps=6, stream=True, stream_buffer=300, max_per_pin=5,
              pseudo_queries=2, queue_size=8)
    full = train(TrainConfig(out=str(tmp_path / "full"), max_steps=6, **kw))  # type: ignore[arg-type]
    train(TrainConfig(out=str(tmp_path / "half"), max_steps=3, **kw))  # type: ignore[arg-type]
    resumed = train(TrainConfig(out=str(tmp_path / "half"), max_steps=6, resume=True, **kw))  # type: ignore[arg-type]
    assert full.steps == resumed.steps == 6
    a = torch.load(tmp_path / "full" / "tower.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "tower.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    summary = json.loads((tmp_path / "full" / "train_summary.json").read_text())
    assert summary["config"]["stream"] is True and summary["train_pairs"] > 1_500
