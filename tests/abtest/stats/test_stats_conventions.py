"""Peer conventions as options, each checked against a value published in a peer's test suite.

Sources (inputs and expected values read from the files named; no code copied):

* GrowthBook ``packages/stats/tests/frequentist/test_tests.py`` (gbstats): ``TestTwoSidedTTest``
  (``test_two_sided_ttest``, ``test_two_sided_ttest_absolute``, ``test_two_sided_ttest_binom``) and
  ``TestSequentialTTest`` (``test_sequential_test_runs``, ``test_sequential_test_runs_prop``,
  ``test_sequential_test_runs_ra``); 5-decimal rounding there, hence ``abs=1e-5``.
* tea-tasting ``tests/metrics/test_proportion.py``: ``test_proportion_analyze_norm``,
  ``..._norm_unpooled``, ``..._norm_no_corr``, ``..._fisher``, ``..._fisher_less`` (19/53 vs 13/47
  users with an order: ``control == 0.3584905660377358``, ``treatment == 0.2765957446808511``) and
  ``test_sample_ratio_analyze_binom``, ``..._norm_corr``, ``..._norm_no_corr`` (53 vs 47 users).
* scipy ``scipy/stats/tests/test_stats.py`` ``test_ttest_ind_nan_2nd_arg``: R ``t.test(x, y,
  var.equal=TRUE)`` with ``y = (1, 2, 1, 2)``, ``x = (2, 3, 4)``.
"""

from __future__ import annotations

import math

import pytest

from abtest.stats import (
    CovariateMeanStats,
    MeanStats,
    ProportionStats,
    RatioStats,
    StatsInputError,
    cuped_ttest,
    proportion_test,
    ratio_ttest,
    relative_interval,
    sequential_test,
    srm_check,
    welch_ttest,
)
from abtest.stats.delta import linearize

GB = 1e-5  # GrowthBook rounds to 5 decimals
# GrowthBook SampleMeanStatistic(sum, sum_squares, n)
GB_A = MeanStats.from_sums(3407, 1396.87, 52377.9767)
GB_B = MeanStats.from_sums(3461, 2422.7, 134698.29)
TT_C, TT_T = ProportionStats(53, 19), ProportionStats(47, 13)  # tea-tasting's data_aggr


def test_growthbook_delta_relative_ci_and_absolute_test():
    r = welch_ttest(GB_A, GB_B, relative="delta")
    # test_two_sided_ttest: expected=0.70732, ci=(-0.03526, 1.44989), uplift stddev=0.37879
    assert r.rel_delta == pytest.approx(0.70732, abs=GB)
    assert r.rel_ci == pytest.approx((-0.03526, 1.44989), abs=GB)
    assert r.rel_se == pytest.approx(0.37879, abs=GB)
    # test_two_sided_ttest_absolute: ci=(0.04538, 0.53462), stddev 0.12478, pValue=0.02016
    assert r.abs_ci == pytest.approx((0.04538, 0.53462), abs=GB)
    assert r.se == pytest.approx(0.12478, abs=GB)
    assert r.p_value == pytest.approx(0.02016, abs=GB)
    # the default log interval is a different (asymmetric) convention
    assert welch_ttest(GB_A, GB_B).rel_ci != pytest.approx(r.rel_ci, abs=1e-3)


def test_growthbook_proportion_welch_t():
    # test_two_sided_ttest_binom: ProportionStatistic(sum=14, n=28) vs (16, 30)
    r = proportion_test(ProportionStats(28, 14), ProportionStats(30, 16), test="welch", relative="delta")
    assert r.rel_ci == pytest.approx((-0.47767, 0.61101), abs=GB)
    assert r.rel_se == pytest.approx(0.2717, abs=GB)
    assert r.method == "unpooled-welch-t" and 55 < r.df < 56


def test_growthbook_sequential_tuning_and_default():
    # test_sequential_test_runs: n=3000 vs 3461, sequential_tuning_parameter=1000
    a = MeanStats.from_sums(3000, 1396.87, 52377.9767)
    r = sequential_test(a, GB_B, n_tune=1000, relative="delta")
    assert r.rel_delta == pytest.approx(0.50336, abs=GB)
    assert r.rel_ci == pytest.approx((-0.55844, 1.56516), abs=GB)
    assert r.rel_se == pytest.approx(0.33341, abs=GB)
    # test_sequential_test_runs_prop: the default tuning parameter (5000 = our DEFAULT_N_TUNE)
    p = sequential_test(ProportionStats(3000, 1396), ProportionStats(3461, 2422), relative="delta")
    assert p.rel_ci == pytest.approx((0.40098, 0.60675), abs=GB)
    assert "n_tune=5000" in p.note


def test_growthbook_sequential_cuped_lift_over_unadjusted_control():
    # test_sequential_test_runs_ra: RegressionAdjustedStatistic, post_pre_sum_of_products=1, theta=None
    c = CovariateMeanStats.from_sums(3000, 1396.87, 16.87, 52377.9767, 527.9767, 1.0)
    t = CovariateMeanStats.from_sums(3461, 2422.7, 22.7, 134698.29, 1348.29, 1.0)
    r = sequential_test(c, t, relative="delta", baseline="unadjusted")
    assert r.rel_delta == pytest.approx(0.50338, abs=GB)
    assert r.rel_se == pytest.approx(0.33341, abs=GB)
    # gbstats' gradient uses the unadjusted treatment mean where we use C + D (the exact gradient
    # of D / C); they differ by θ·ΔX̄, which moves this interval by 1e-5
    assert r.rel_ci == pytest.approx((-0.50969, 1.51646), abs=2e-5)


def test_tea_tasting_proportion_conventions():
    pooled_cc = proportion_test(TT_C, TT_T, variance="pooled", continuity=True)  # test_proportion_analyze_norm
    assert pooled_cc.p_value == pytest.approx(0.5083165530405196, rel=1e-10)
    assert pooled_cc.abs_ci == pytest.approx((-0.2851524037206986, 0.12136276100692911), rel=1e-10)
    assert pooled_cc.method == "pooled-z-cc"
    unpooled_cc = proportion_test(TT_C, TT_T, continuity=True)  # ..._norm_unpooled
    assert unpooled_cc.p_value == pytest.approx(0.5049066155125612, rel=1e-10)
    assert unpooled_cc.abs_ci == pytest.approx((-0.28368859581157896, 0.11989895309780946), rel=1e-10)
    pooled = proportion_test(TT_C, TT_T, variance="pooled")  # ..._norm_no_corr
    assert pooled.p_value == pytest.approx(0.3809096823118986, rel=1e-10)
    assert pooled.abs_ci == pytest.approx((-0.26508014358420723, 0.10129050087043773), rel=1e-10)
    fisher = proportion_test(TT_C, TT_T, test="fisher")  # ..._fisher
    assert fisher.p_value == pytest.approx(0.3999948918153569, rel=1e-10)
    assert fisher.method == "fisher-exact"
    less = proportion_test(TT_C, TT_T, test="fisher", alternative="less")  # ..._fisher_less
    assert less.p_value == pytest.approx(0.2546303652212273, rel=1e-10)


def test_tea_tasting_sample_ratio_methods():
    obs, w = {"control": 53, "treatment": 47}, {"control": 1, "treatment": 1}
    assert srm_check(obs, w, method="binomial").p_value == pytest.approx(0.6172994135892521, rel=1e-10)
    assert srm_check(obs, w, method="chi2-yates").p_value == pytest.approx(0.6170750774519738, rel=1e-10)
    r = srm_check(obs, w)
    assert r.p_value == pytest.approx(0.5485062355001472, rel=1e-10) and r.method == "chi2"
    with pytest.raises(StatsInputError, match="two arms"):
        srm_check({"a": 5, "b": 5, "c": 5}, {"a": 1, "b": 1, "c": 1}, method="binomial")
    with pytest.raises(StatsInputError, match="SRM method"):
        srm_check(obs, w, method="g-test")


def test_student_t_matches_r_var_equal():
    r = welch_ttest(MeanStats.from_array([2.0, 3.0, 4.0]), MeanStats.from_array([1.0, 2.0, 1.0, 2.0]), test="student")
    assert r.statistic == pytest.approx(-2.5354627641855498, rel=1e-12)
    assert r.p_value == pytest.approx(0.052181400457057901, rel=1e-12)
    assert r.df == 5 and r.method == "student-t"


def test_test_keyword_on_every_function():
    c, t = RatioStats(400, 3.0, 30.0, 4.0, 90.0, 15.0), RatioStats(420, 3.3, 30.5, 4.4, 95.0, 16.0)
    for test, suffix in (("welch", "welch-t"), ("student", "student-t"), ("z", "z")):
        r = ratio_ttest(c, t, test=test)
        ref = welch_ttest(linearize(c), linearize(t), test=test)
        assert r.method == f"delta-{suffix}" and r.p_value == pytest.approx(ref.p_value, rel=1e-12)
    assert ratio_ttest(c, t, test="z").df == math.inf
    cc = CovariateMeanStats(500, 10.0, 9.0, 4.0, 3.0, 2.0)
    ct = CovariateMeanStats(500, 10.4, 9.1, 4.2, 3.1, 2.1)
    assert cuped_ttest(cc, ct, test="student").method == "cuped-student-t"
    assert cuped_ttest(cc, ct, test="student").df == 998
    for f, args in ((welch_ttest, (MeanStats(10, 1, 1), MeanStats(10, 1, 1))), (ratio_ttest, (c, t)),
                    (cuped_ttest, (cc, ct))):
        with pytest.raises(StatsInputError, match="test must be one of"):
            f(*args, test="mann-whitney")


@pytest.mark.parametrize("method", ["log", "delta", "fieller"])
def test_one_sided_relative_intervals_are_open_with_inf(method):
    g = relative_interval(10.0, 0.04, 11.0, 0.04, alternative="greater", method=method)
    s = relative_interval(10.0, 0.04, 11.0, 0.04, alternative="less", method=method)
    assert g.high == math.inf and math.isfinite(g.low)
    assert s.low == -math.inf and math.isfinite(s.high)


def test_cuped_lift_baseline_named_and_reduces_to_plain_without_covariate_signal():
    cc = CovariateMeanStats(800, 10.0, 5.0, 9.0, 4.0, 0.0)
    ct = CovariateMeanStats(800, 10.5, 5.0, 9.0, 4.0, 0.0)
    adj = cuped_ttest(cc, ct, theta=0.0, relative="delta")
    un = cuped_ttest(cc, ct, theta=0.0, relative="delta", baseline="unadjusted")
    plain = welch_ttest(MeanStats(800, 10.0, 9.0), MeanStats(800, 10.5, 9.0), relative="delta")
    assert adj.rel_ci == pytest.approx(plain.rel_ci, rel=1e-12)
    assert un.rel_ci == pytest.approx(plain.rel_ci, rel=1e-12) and "unadjusted control" in un.note
    # with a real covariate the two baselines differ; the absolute test does not
    cc2 = CovariateMeanStats(800, 10.0, 5.0, 9.0, 4.0, 3.0)
    ct2 = CovariateMeanStats(800, 10.5, 5.3, 9.0, 4.0, 3.0)
    a, u = cuped_ttest(cc2, ct2), cuped_ttest(cc2, ct2, baseline="unadjusted")
    assert a.p_value == u.p_value and a.rel_delta != pytest.approx(u.rel_delta, rel=1e-6)
    assert u.rel_delta == pytest.approx(a.abs_delta / 10.0, rel=1e-12)
