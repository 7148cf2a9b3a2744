"""Welch's t-test on sufficient statistics vs scipy golden values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from abtest.stats import MeanStats, StatsInputError, welch_df, welch_ttest


@pytest.fixture
def arms() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    return rng.gamma(2.0, 3.0, size=700), rng.gamma(2.2, 3.0, size=1100)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_welch_matches_scipy_from_stats_and_raw(arms, alternative):
    c, t = arms
    res = welch_ttest(MeanStats.from_array(c), MeanStats.from_array(t), alternative=alternative)
    ref = sps.ttest_ind_from_stats(
        t.mean(),
        t.std(ddof=1),
        t.size,
        c.mean(),
        c.std(ddof=1),
        c.size,
        equal_var=False,
        alternative=alternative,
    )
    raw = sps.ttest_ind(t, c, equal_var=False, alternative=alternative)
    assert res.p_value == pytest.approx(ref.pvalue, abs=1e-10, rel=1e-10)
    assert res.p_value == pytest.approx(raw.pvalue, abs=1e-10, rel=1e-10)
    assert res.statistic == pytest.approx(raw.statistic, rel=1e-10)
    assert res.df == pytest.approx(raw.df, rel=1e-10)
    # CI from scipy's own confidence_interval (treatment - control)
    ci = raw.confidence_interval(0.95)
    assert res.abs_ci[0] == pytest.approx(ci.low, rel=1e-9)
    assert res.abs_ci[1] == pytest.approx(ci.high, rel=1e-9)


def test_from_sums_equals_from_array(arms):
    c, _ = arms
    a = MeanStats.from_array(c)
    b = MeanStats.from_sums(c.size, c.sum(), (c**2).sum())
    assert b.n == a.n
    assert b.mean == pytest.approx(a.mean, rel=1e-12)
    assert b.var == pytest.approx(a.var, rel=1e-9)
    assert a.var == pytest.approx(np.var(c, ddof=1), rel=1e-12)


def test_welch_df_vectorised_matches_scalar():
    v = welch_df(np.array([1.0, 4.0]), np.array([10, 50]), np.array([2.0, 1.0]), np.array([20, 30]))
    assert v.shape == (2,)
    assert v[1] == pytest.approx(welch_df(4.0, 50, 1.0, 30))


def test_ci_and_p_agree(arms):
    c, t = arms
    for shift in np.linspace(-1.5, 1.5, 13):
        r = welch_ttest(MeanStats.from_array(c), MeanStats.from_array(t + shift))
        excludes_zero = r.abs_ci[0] > 0 or r.abs_ci[1] < 0
        assert excludes_zero == (r.p_value < r.alpha)


def test_one_sided_interval_is_half_open(arms):
    c, t = arms
    g = welch_ttest(MeanStats.from_array(c), MeanStats.from_array(t), alternative="greater")
    assert math.isinf(g.abs_ci[1]) and math.isfinite(g.abs_ci[0])
    assert math.isinf(g.rel_ci[1])
    l_ = welch_ttest(MeanStats.from_array(c), MeanStats.from_array(t), alternative="less")
    assert math.isinf(l_.abs_ci[0]) and math.isfinite(l_.abs_ci[1])


def test_degenerate_inputs():
    with pytest.raises(StatsInputError, match=r"metric 'imps'.*arm 'B'.*n >= 2"):
        welch_ttest(MeanStats(10, 1.0, 1.0), MeanStats(1, 1.0, 0.0), metric="imps", treatment_name="B")
    with pytest.raises(StatsInputError, match="variance"):
        welch_ttest(MeanStats(10, 1.0, -1.0), MeanStats(10, 1.0, 1.0))
    with pytest.raises(StatsInputError, match="alternative"):
        welch_ttest(MeanStats(10, 1.0, 1.0), MeanStats(10, 1.0, 1.0), alternative="bigger")
    with pytest.raises(StatsInputError):
        MeanStats.from_array([1.0])
    r = welch_ttest(MeanStats(10, 2.0, 0.0), MeanStats(10, 3.0, 0.0))
    assert math.isnan(r.p_value) and "zero variance" in r.note
    assert r.abs_delta == 1.0
    assert isinstance(StatsInputError("x"), ValueError)


def test_to_dict_is_json_ready(arms):
    import json

    c, t = arms
    d = welch_ttest(MeanStats.from_array(c), MeanStats.from_array(t), metric="m").to_dict()
    assert json.loads(json.dumps(d))["metric"] == "m"
    assert d["significant"] in (True, False)
