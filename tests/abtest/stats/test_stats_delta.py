"""Delta-method ratio metrics: hand-derived formula, Monte-Carlo variance, from_sums."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from abtest.stats import RatioStats, StatsInputError, linearize, linearized_variance, ratio_ttest


def _users(rng: np.random.Generator, n: int, rate: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """Heterogeneous users: impressions ~ 1 + Poisson(gamma), long clicks ~ Binomial(imps, user rate)."""
    imps = 1 + rng.poisson(rng.gamma(1.5, 6.0, size=n))
    p_user = rng.beta(rate * 4, (1 - rate) * 4, size=n)
    return rng.binomial(imps, p_user).astype(float), imps.astype(float)


def test_linearized_variance_hand_formula():
    rng = np.random.default_rng(1)
    num, den = _users(rng, 5000)
    s = RatioStats.from_arrays(num, den)
    r = num.sum() / den.sum()
    # per-user linearised contribution (num - R den) / mean(den): its sample variance is var_lin exactly
    lin = (num - r * den) / den.mean()
    assert linearized_variance(s) == pytest.approx(np.var(lin, ddof=1), rel=1e-10)
    # and the textbook form Var(R̂) ≈ (1/n)(σ_N²/μ_D² - 2 μ_N σ_ND/μ_D³ + μ_N² σ_D²/μ_D⁴)
    mn, md = num.mean(), den.mean()
    c = np.cov(num, den, ddof=1)
    textbook = (c[0, 0] / md**2 - 2 * mn * c[0, 1] / md**3 + mn**2 * c[1, 1] / md**4) / num.size
    assert linearize(s).var_of_mean == pytest.approx(textbook, rel=1e-10)


def test_delta_variance_matches_monte_carlo():
    rng = np.random.default_rng(2024)
    n, reps = 1000, 1500
    ratios, var_hat = np.empty(reps), np.empty(reps)
    for i in range(reps):
        num, den = _users(rng, n)
        s = RatioStats.from_arrays(num, den)
        ratios[i] = s.ratio
        var_hat[i] = linearize(s).var_of_mean
    mc_var = ratios.var(ddof=1)
    # Monte-Carlo SE of a variance estimate with 1500 reps is ~3.7%; allow 10%
    assert var_hat.mean() == pytest.approx(mc_var, rel=0.10)


def test_impression_level_binomial_understates_variance():
    rng = np.random.default_rng(5)
    num, den = _users(rng, 4000)
    s = RatioStats.from_arrays(num, den)
    r = s.ratio
    binomial_var = r * (1 - r) / den.sum()
    assert (
        linearize(s).var_of_mean > 1.5 * binomial_var
    )  # user heterogeneity → naive test is anti-conservative


def test_from_sums_equals_from_arrays():
    rng = np.random.default_rng(3)
    num, den = _users(rng, 300)
    a = RatioStats.from_arrays(num, den)
    b = RatioStats.from_sums(
        num.size, num.sum(), den.sum(), (num**2).sum(), (den**2).sum(), (num * den).sum()
    )
    for f in ("mean_num", "mean_den", "var_num", "var_den", "cov_num_den"):
        assert getattr(b, f) == pytest.approx(getattr(a, f), rel=1e-9)


def test_ratio_ttest_is_welch_on_linearised_values():
    rng = np.random.default_rng(4)
    (nc, dc), (nt, dt) = _users(rng, 800), _users(rng, 900, rate=0.33)
    res = ratio_ttest(
        RatioStats.from_arrays(nc, dc), RatioStats.from_arrays(nt, dt), metric="long_click_rate"
    )
    lc = (nc - nc.sum() / dc.sum() * dc) / dc.mean() + nc.sum() / dc.sum()
    lt = (nt - nt.sum() / dt.sum() * dt) / dt.mean() + nt.sum() / dt.sum()
    ref = sps.ttest_ind(lt, lc, equal_var=False)
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert res.df == pytest.approx(ref.df, rel=1e-9)
    assert res.abs_delta == pytest.approx(nt.sum() / dt.sum() - nc.sum() / dc.sum(), rel=1e-12)
    assert res.method == "delta-welch-t"


def test_zero_denominator_raises_naming_metric_and_arm():
    s = RatioStats(100, 0.0, 0.0, 0.0, 0.0, 0.0)
    with pytest.raises(StatsInputError, match=r"metric 'ctr', arm 'control'.*denominator"):
        ratio_ttest(s, RatioStats(100, 1.0, 2.0, 1.0, 1.0, 0.5), metric="ctr")


def test_from_sums_raises_on_clearly_negative_variance_and_clips_round_off():
    from abtest.stats import StatsInputError

    # Σden² far below (Σden)²/n: impossible sums (e.g. from two different populations)
    with pytest.raises(StatsInputError, match=r"metric 'ctr', arm 'treatment'.*variance of denominator"):
        RatioStats.from_sums(100, 50.0, 1000.0, 40.0, 5000.0, 600.0, metric="ctr", arm="treatment")
    with pytest.raises(StatsInputError, match=r"variance of numerator"):
        RatioStats.from_sums(100, 500.0, 1000.0, 100.0, 20000.0, 6000.0)
    # constant values: Σx² - (Σx)²/n is 0 up to round-off → clipped to 0, no error
    x = np.full(1000, 0.1)
    r = RatioStats.from_sums(1000, x.sum(), x.sum(), (x * x).sum(), (x * x).sum(), (x * x).sum())
    assert r.var_num >= 0 and r.var_num < 1e-12
