"""Always-valid intervals: formula, validity under continuous peeking, consistency."""

from __future__ import annotations

import math

import numpy as np
import pytest

from abtest.stats import MeanStats, StatsInputError, sequential_test, welch_ttest
from abtest.stats.sequential import always_valid_halfwidth, always_valid_p_value, mixture_rho


def test_halfwidth_formula_and_p_value_inverse():
    alpha, n, se = 0.05, 10_000, 0.02
    rho = mixture_rho(alpha, 10_000)
    assert rho**2 == pytest.approx((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / 10_000)
    hw = always_valid_halfwidth(se, n, alpha, rho)
    # Howard et al. boundary on the sum scale, u(V) = sqrt((V + r) log((V + r)/(r α²))), V = N s², r = s²/ρ²
    s2 = se**2 * n
    v, r = n * s2, s2 / rho**2
    assert hw == pytest.approx(math.sqrt((v + r) * math.log((v + r) / (r * alpha**2))) / n, rel=1e-12)
    # the always-valid p-value at delta = halfwidth equals alpha
    assert always_valid_p_value(hw, se, n, rho) == pytest.approx(alpha, rel=1e-9)
    assert hw > 1.96 * se  # the price of peeking


def test_type_one_error_under_continuous_monitoring():
    """500 A/A streams, 40 looks each: the share ever excluding 0 stays <= alpha (fixed-horizon does not)."""
    rng = np.random.default_rng(3)
    reps, looks, step = 500, 40, 50
    x = rng.normal(0, 1, size=(reps, 2, looks * step))
    n = np.arange(1, looks + 1) * step
    cs = np.cumsum(x, axis=2)[:, :, n - 1]
    cs2 = np.cumsum(x**2, axis=2)[:, :, n - 1]
    mean = cs / n
    var = (cs2 - cs**2 / n) / (n - 1)
    delta = mean[:, 1] - mean[:, 0]
    se = np.sqrt(var[:, 0] / n + var[:, 1] / n)
    rho = mixture_rho(0.05, 2 * n[-1])
    hw = always_valid_halfwidth(se, 2 * n, 0.05, rho)
    seq_fpr = np.mean(np.any(np.abs(delta) > hw, axis=1))
    naive_fpr = np.mean(np.any(np.abs(delta) > 1.96 * se, axis=1))
    assert seq_fpr <= 0.05
    assert naive_fpr > 0.12  # peeking a fixed-horizon test inflates the error rate


def test_sequential_test_result_is_consistent():
    c, t = MeanStats(20_000, 10.0, 9.0), MeanStats(20_000, 10.12, 9.0)
    r = sequential_test(c, t, n_tune=40_000)
    fixed = welch_ttest(c, t)
    assert r.method == "sequential-welch-t"
    assert (r.abs_ci[1] - r.abs_ci[0]) > (fixed.abs_ci[1] - fixed.abs_ci[0])
    assert (r.p_value < 0.05) == (r.abs_ci[0] > 0 or r.abs_ci[1] < 0)
    assert r.rel_ci[0] < r.rel_delta < r.rel_ci[1]
    with pytest.raises(StatsInputError):
        sequential_test(c, t, n_tune=0)


def _aa_streams(reps: int, looks: int, step: int, seed: int):
    """A/A streams: ``(Δ (reps, looks), se (reps, looks), total users (looks,))`` at every look."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, size=(reps, 2, looks * step)).astype(np.float32)
    n = np.arange(1, looks + 1) * step
    cs = np.cumsum(x, axis=2, dtype=np.float64)[:, :, n - 1]
    cs2 = np.cumsum(x.astype(np.float64) ** 2, axis=2)[:, :, n - 1]
    var = (cs2 - cs**2 / n) / (n - 1)
    return cs[:, 1] / n - cs[:, 0] / n, np.sqrt(var[:, 0] / n + var[:, 1] / n), 2 * n


def _fpr(delta: np.ndarray, se: np.ndarray, n_total: np.ndarray, rho) -> float:
    return float(np.mean(np.any(np.abs(delta) > always_valid_halfwidth(se, n_total, 0.05, rho), axis=1)))


def test_fixed_default_n_tune_stays_valid_while_retuning_each_look_does_not():
    """ρ fixed at the default planned size keeps the A/A FPR <= α (40 looks, and 2,000 looks); ρ
    re-tuned to the current N at every look (the old behaviour without --n-tune) is a fixed z
    boundary (≈ 3.03 se), crossed more and more often the longer one peeks."""
    from abtest.stats.sequential import DEFAULT_N_TUNE

    rho = mixture_rho(0.05, DEFAULT_N_TUNE)
    delta, se, n_total = _aa_streams(reps=1000, looks=40, step=60, seed=5)
    assert _fpr(delta, se, n_total, rho) <= 0.05
    retuned = np.array([mixture_rho(0.05, k) for k in n_total])
    z = always_valid_halfwidth(se, n_total, 0.05, retuned) / se
    assert np.allclose(z, z[0, 0]) and 3.0 < z[0, 0] < 3.1
    delta, se, n_total = _aa_streams(reps=800, looks=2000, step=10, seed=5)
    assert _fpr(delta, se, n_total, rho) <= 0.05
    assert _fpr(delta, se, n_total, np.array([mixture_rho(0.05, k) for k in n_total])) > 0.06
    assert sequential_test(MeanStats(100, 1.0, 1.0), MeanStats(100, 1.1, 1.0)).note == f"n_tune={DEFAULT_N_TUNE:g}"
