"""Two-proportion z-tests vs statsmodels golden values."""

from __future__ import annotations

import math

import pytest
from statsmodels.stats import proportion as smp

from abtest.stats import ProportionStats, StatsInputError, proportion_test

C, T = ProportionStats(2000, 300), ProportionStats(2100, 360)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
def test_unpooled_matches_statsmodels_wald(alternative):
    res = proportion_test(C, T, alternative=alternative)
    sm_alt = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}[alternative]
    ref = smp.test_proportions_2indep(
        T.successes, T.n, C.successes, C.n, method="wald", compare="diff", alternative=sm_alt
    )
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert res.statistic == pytest.approx(ref.statistic, rel=1e-10)
    assert res.df == math.inf


def test_pooled_matches_proportions_ztest_and_ci_stays_unpooled():
    pooled = proportion_test(C, T, pooled=True)
    stat, p = smp.proportions_ztest([T.successes, C.successes], [T.n, C.n])
    assert pooled.p_value == pytest.approx(p, rel=1e-10)
    assert pooled.statistic == pytest.approx(stat, rel=1e-10)
    low, high = smp.confint_proportions_2indep(
        T.successes, T.n, C.successes, C.n, method="wald", compare="diff"
    )
    assert pooled.abs_ci == pytest.approx((low, high), rel=1e-10)
    assert proportion_test(C, T).abs_ci == pooled.abs_ci


def test_relative_ci_is_katz_log_interval():
    res = proportion_test(C, T)
    low, high = smp.confint_proportions_2indep(
        T.successes, T.n, C.successes, C.n, method="log", compare="ratio"
    )
    assert res.rel_ci[0] == pytest.approx(low - 1.0, rel=1e-10)
    assert res.rel_ci[1] == pytest.approx(high - 1.0, rel=1e-10)
    assert res.rel_delta == pytest.approx((360 / 2100) / (300 / 2000) - 1.0, rel=1e-12)


def test_degenerate_proportions():
    r = proportion_test(ProportionStats(50, 0), ProportionStats(60, 0), metric="share")
    assert math.isnan(r.p_value) and "zero variance" in r.note
    # no variation within arms, but the pooled test is still defined
    r = proportion_test(ProportionStats(50, 0), ProportionStats(50, 50), pooled=True)
    assert r.p_value < 1e-10 and "zero variance" not in r.note
    with pytest.raises(StatsInputError, match=r"metric 'share', arm 'treatment'"):
        proportion_test(C, ProportionStats(10, 11), metric="share")
    with pytest.raises(StatsInputError, match="0/1"):
        ProportionStats.from_array([0, 1, 2])
    assert ProportionStats.from_array([0, 1, 1, 0]).p == 0.5
