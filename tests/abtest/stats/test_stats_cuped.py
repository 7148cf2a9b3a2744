"""CUPED: pooled θ, variance reduction on correlated covariates, unbiasedness (fixed seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from abtest.stats import (
    CovariateMeanStats,
    CovariateRatioStats,
    MeanStats,
    RatioStats,
    cuped_adjust_means,
    cuped_adjust_ratios,
    cuped_ttest,
    ratio_ttest,
    welch_ttest,
)


def _mean_arms(rng, n, effect, rho=0.8):
    x = rng.normal(10.0, 3.0, size=(2, n))
    y = 10.0 + rho * (x - 10.0) + rng.normal(0, 3.0 * np.sqrt(1 - rho**2), size=(2, n))
    y[1] += effect
    return x, y


def test_theta_is_pooled_ols_slope_and_from_sums_agree():
    rng = np.random.default_rng(0)
    x, y = _mean_arms(rng, 2000, 0.5)
    c = CovariateMeanStats.from_arrays(y[0], x[0])
    t = CovariateMeanStats.from_arrays(y[1], x[1])
    adj = cuped_adjust_means(c, t)
    xp, yp = x.ravel(), y.ravel()
    assert adj.theta == pytest.approx(np.cov(yp, xp)[0, 1] / np.var(xp, ddof=1), rel=1e-10)
    s = CovariateMeanStats.from_sums(
        2000, y[0].sum(), x[0].sum(), (y[0] ** 2).sum(), (x[0] ** 2).sum(), (x[0] * y[0]).sum()
    )
    assert s.cov_xy == pytest.approx(c.cov_xy, rel=1e-8)
    # adjusted per-user values, computed by hand, give the same Welch test
    yc = y[0] - adj.theta * (x[0] - xp.mean())
    yt = y[1] - adj.theta * (x[1] - xp.mean())
    ref = welch_ttest(MeanStats.from_array(yc), MeanStats.from_array(yt))
    res = cuped_ttest(c, t)
    assert res.p_value == pytest.approx(ref.p_value, rel=1e-9)
    assert res.abs_delta == pytest.approx(ref.abs_delta, rel=1e-10)
    assert "theta=" in res.note and res.method == "cuped-welch-t"


def test_cuped_reduces_variance_and_is_unbiased():
    rng = np.random.default_rng(1)
    reps, n, effect = 400, 500, 0.3
    est_raw, est_adj, red = np.empty(reps), np.empty(reps), np.empty(reps)
    for i in range(reps):
        x, y = _mean_arms(rng, n, effect)
        adj = cuped_adjust_means(
            CovariateMeanStats.from_arrays(y[0], x[0]), CovariateMeanStats.from_arrays(y[1], x[1])
        )
        est_adj[i] = adj.treatment.mean - adj.control.mean
        est_raw[i] = y[1].mean() - y[0].mean()
        red[i] = adj.variance_reduction
    assert red.mean() == pytest.approx(0.64, abs=0.03)  # ρ² = 0.64
    assert est_adj.var() < 0.45 * est_raw.var()
    # unbiased: mean of the estimates within 3 Monte-Carlo SEs of the true effect
    assert abs(est_adj.mean() - effect) < 3 * est_adj.std() / np.sqrt(reps)


def _ratio_users(rng, n, lift=0.0):
    activity = rng.gamma(2.0, 5.0, size=n)
    pre_den = rng.poisson(activity) + 1.0
    den = rng.poisson(activity) + 1.0
    p_user = rng.beta(3, 7, size=n)
    pre_num = rng.binomial(pre_den.astype(int), p_user).astype(float)
    num = rng.binomial(den.astype(int), np.clip(p_user * (1 + lift), 0, 1)).astype(float)
    return num, den, pre_num, pre_den


def test_ratio_cuped_on_linearised_metric():
    rng = np.random.default_rng(2)
    c = _ratio_users(rng, 3000)
    t = _ratio_users(rng, 3000, lift=0.05)
    sc, st = CovariateRatioStats.from_arrays(*c), CovariateRatioStats.from_arrays(*t)
    adj = cuped_adjust_ratios(sc, st)
    raw = ratio_ttest(RatioStats.from_arrays(c[0], c[1]), RatioStats.from_arrays(t[0], t[1]))
    res = cuped_ttest(sc, st)
    assert adj.variance_reduction > 0.2
    assert res.se < raw.se
    assert res.method == "cuped-delta-welch-t"

    # hand check: linearised pooled θ from per-user linearised values
    def lin(num, den):
        return (num - num.sum() / den.sum() * den) / den.mean()

    pooled = [np.concatenate([a, b]) for a, b in zip(c, t, strict=True)]
    ly, lx = lin(pooled[0], pooled[1]), lin(pooled[2], pooled[3])
    assert adj.theta == pytest.approx(np.cov(ly, lx)[0, 1] / np.var(lx, ddof=1), rel=1e-9)
    s = CovariateRatioStats.from_sums(3000, np.array([v.sum() for v in c]), np.vstack(c) @ np.vstack(c).T)
    np.testing.assert_allclose(np.asarray(s.cov), np.asarray(sc.cov), rtol=1e-7)


def test_constant_covariate_means_no_adjustment():
    c = CovariateMeanStats(100, 5.0, 1.0, 4.0, 0.0, 0.0)
    t = CovariateMeanStats(100, 5.5, 1.0, 4.0, 0.0, 0.0)
    adj = cuped_adjust_means(c, t)
    assert adj.theta == 0.0 and "not applied" in adj.note and adj.variance_reduction == 0.0
