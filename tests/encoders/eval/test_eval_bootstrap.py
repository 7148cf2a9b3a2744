"""Paired bootstrap CI of a metric difference over queries."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.eval.bootstrap import paired_bootstrap_diff


def test_ci_contains_true_difference_and_is_paired() -> None:
    # Per-query hit rates: system a = b + 0.1 on average, with a large shared query effect.
    rng = np.random.default_rng(0)
    n = 400
    pairs = rng.integers(1, 5, size=n).astype(float)
    base = rng.uniform(0.1, 0.8, size=n)  # query difficulty shared by both systems
    hits_b = rng.binomial(pairs.astype(int), base).astype(float)
    hits_a = rng.binomial(pairs.astype(int), np.clip(base + 0.1, 0, 1)).astype(float)
    true_diff = float(((np.clip(base + 0.1, 0, 1) - base) * pairs).sum() / pairs.sum())
    ci = paired_bootstrap_diff(hits_a, hits_b, pairs, reps=1000, seed=7)
    assert ci.low < true_diff < ci.high
    assert ci.low < ci.diff < ci.high
    assert ci.significant and ci.p_value < 0.01
    assert ci.diff == pytest.approx((hits_a.sum() - hits_b.sum()) / pairs.sum())
    again = paired_bootstrap_diff(hits_a, hits_b, pairs, reps=1000, seed=7)
    assert (again.low, again.high) == (ci.low, ci.high)


def test_constant_shift_gives_degenerate_interval() -> None:
    b = np.linspace(0, 1, 50)
    ci = paired_bootstrap_diff(b + 0.25, b, None, reps=200, seed=1)
    assert ci.low == pytest.approx(0.25) and ci.high == pytest.approx(0.25)


def test_no_difference_is_not_significant() -> None:
    rng = np.random.default_rng(3)
    a = rng.uniform(size=300)
    ci = paired_bootstrap_diff(a, rng.permutation(a), None, reps=500, seed=2)
    assert ci.low < 0 < ci.high and not ci.significant


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="equal-length"):
        paired_bootstrap_diff(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="at least one query"):
        paired_bootstrap_diff(np.zeros(0), np.zeros(0))
