"""The call planner of served batches (:mod:`encoders.runtime.length_groups`) and
``BundleEncoder.encode_grouped``, which tokenises a batch once and runs it in those calls."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest

from encoders.runtime import BundleEncoder
from encoders.runtime.length_groups import padded_cost, plan_groups


def test_plan_groups_keeps_equal_lengths_together_and_cuts_where_padding_costs_more() -> None:
    assert plan_groups([]) == []
    assert plan_groups([5, 5, 5, 5]) == [[0, 1, 2, 3]]
    assert plan_groups([5, 6], overhead=16) == [[0, 1]]  # one padded token is cheaper than a call
    lengths = [3] * 20 + [30] * 2
    groups = plan_groups(lengths, overhead=16)
    assert groups == [list(range(20)), [20, 21]]
    assert sum(padded_cost([lengths[i] for i in g], 16) for g in groups) < padded_cost(lengths, 16)


def test_plan_groups_is_optimal_and_covers_every_row_once() -> None:
    rng = random.Random(7)
    for _ in range(200):
        lengths = [rng.randint(3, 12) for _ in range(rng.randint(1, 9))]
        overhead = rng.choice([0.5, 4.0, 16.0, 64.0])
        groups = plan_groups(lengths, overhead)
        assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
        cost = sum(padded_cost([lengths[i] for i in g], overhead) for g in groups)
        # brute force over cut points of the length-sorted order
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        best = min(
            sum(padded_cost([lengths[i] for i in order[a:b]], overhead) for a, b in itertools.pairwise((0, *cuts, len(order))))
            for r in range(len(order))
            for cuts in itertools.combinations(range(1, len(order)), r)
        )
        assert cost == pytest.approx(best), (lengths, overhead, groups)


def test_encode_grouped_tokenises_once_and_gives_the_rows_of_encode(tiny_onnx_bundle: Path) -> None:
    enc = BundleEncoder(tiny_onnx_bundle, threads=1)
    texts = [f"q{i}" for i in range(10)] + ["long query with many words in it to pad a batch " + str(i) for i in range(2)]
    events: list[str] = []
    tokenize, run_ids = enc.tokenizer.encode, enc.run_ids

    def counting_tokenize(items: list[str]) -> list[list[int]]:
        events.append(f"tokenize {len(items)}")
        return tokenize(items)

    def recording_run(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        events.append(f"run {ids.shape[0]}x{ids.shape[1]}")
        return run_ids(ids, mask)

    enc.tokenizer.encode = counting_tokenize  # type: ignore[method-assign]
    enc.run_ids = recording_run  # type: ignore[method-assign]
    out = enc.encode_grouped(texts, 4.0, before=lambda: events.append("before"))
    assert events[0] == "tokenize 12" and events[1] == "before" and events.count("tokenize 12") == 1
    runs = [e for e in events if e.startswith("run")]
    assert len(runs) >= 2 and sum(int(r.split()[1].split("x")[0]) for r in runs) == 12  # short and long apart
    expected = BundleEncoder(tiny_onnx_bundle, threads=1).encode(texts)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-5)
    # no rows: nothing to run, `before` still runs (the previous batch gets its answers)
    events.clear()
    assert enc.encode_grouped([], 4.0, before=lambda: events.append("before")).shape == (0, enc.dim)
    assert events == ["before"]
    with pytest.raises(TypeError, match="position 1"):
        enc.encode_grouped(["ok", 3], 4.0)  # type: ignore[list-item]
