"""Relative intervals: log-scale delta method and Fieller — coverage and shape."""

from __future__ import annotations

import math

import numpy as np
import pytest

from abtest.stats import MeanStats, relative_interval, welch_ttest


def _coverage(method: str, n: int = 200, reps: int = 2000) -> float:
    """Share of simulated experiments (vectorised) whose relative CI covers the true lift 10%."""
    rng = np.random.default_rng(7)
    mu_c, lift = 5.0, 0.10
    c = rng.exponential(mu_c, size=(reps, n))
    t = rng.exponential(mu_c * (1 + lift), size=(reps, n))
    mc, vc, mt, vt = c.mean(1), c.var(1, ddof=1), t.mean(1), t.var(1, ddof=1)
    hits = 0
    for i in range(reps):
        r = welch_ttest(MeanStats(n, mc[i], vc[i]), MeanStats(n, mt[i], vt[i]), relative=method)
        hits += r.rel_ci[0] <= lift <= r.rel_ci[1]
    return hits / reps


@pytest.mark.parametrize("method", ["log", "fieller"])
def test_relative_ci_coverage(method):
    cov = _coverage(method)
    assert 0.93 <= cov <= 0.97, cov


def test_log_interval_is_asymmetric_and_above_minus_one():
    ri = relative_interval(10.0, 4.0, 6.0, 4.0)
    assert ri.rel_delta == pytest.approx(-0.4)
    assert ri.low > -1.0
    assert (ri.high - ri.rel_delta) > (ri.rel_delta - ri.low)  # exp() stretches the upper side
    # point estimate of log scale is the centre
    assert math.log1p(ri.low) + math.log1p(ri.high) == pytest.approx(2 * math.log(0.6), rel=1e-12)


def test_fieller_unbounded_and_log_nan_when_control_near_zero():
    ri = relative_interval(0.1, 1.0, 2.0, 0.01, method="fieller")
    assert ri.low == -math.inf and ri.high == math.inf and "unbounded" in ri.note
    ri = relative_interval(-1.0, 0.01, 2.0, 0.01, method="log")
    assert math.isnan(ri.low) and "positive" in ri.note
    ri = relative_interval(0.0, 0.01, 2.0, 0.01)
    assert math.isnan(ri.rel_delta)


def test_fieller_close_to_log_when_precise():
    a = relative_interval(10.0, 0.01, 11.0, 0.01, method="log")
    b = relative_interval(10.0, 0.01, 11.0, 0.01, method="fieller")
    assert a.low == pytest.approx(b.low, abs=2e-4) and a.high == pytest.approx(b.high, abs=2e-4)
