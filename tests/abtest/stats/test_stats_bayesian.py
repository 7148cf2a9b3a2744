"""The Bayesian engine against GrowthBook's published gbstats numbers.

Source (inputs and expected values read from the file; no code copied): GrowthBook
``packages/stats/tests/bayesian/test_tests.py`` — ``TestNorm.test_bayesian_gaussian_ab_test``,
``TestNorm.test_bayesian_gaussian_ab_test_informative``, ``TestNorm.test_missing_data``,
``TestBinom.test_bayesian_binomial_ab_test`` (``EffectBayesianABTest``, relative effect, results
rounded to 5 decimals, hence ``abs=1e-5``; ``risk`` = ``[control, treatment]``) and
``TestGaussianEffectRelativeAbsolutePriors.test_bayesian_effect_relative_effect``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abtest.stats import MeanStats, ProportionStats, RatioStats, StatsInputError, ratio_ttest, welch_ttest
from abtest.stats.bayesian import GaussianPrior, bayes_rejects, bayesian_test, expected_positive_part
from abtest.stats.delta import linearize

GB = 1e-5
# SampleMeanStatistic(sum=100, sum_squares=1002.25, n=10) vs (sum=105, sum_squares=1111.5, n=10)
A = MeanStats.from_sums(10, 100, 1002.25)
B = MeanStats.from_sums(10, 105, 1111.5)


def _check(r, expected, ci, stddev, ctw, risk):
    assert r.expected == pytest.approx(expected, abs=GB)
    assert r.ci == pytest.approx(ci, abs=GB)
    assert r.stddev == pytest.approx(stddev, abs=GB)
    assert r.chance_to_win == pytest.approx(ctw, abs=GB)
    assert (r.risk_control, r.risk_treatment) == pytest.approx(risk, abs=GB)


def test_growthbook_gaussian_flat_prior():
    r = bayesian_test(A, B)  # test_bayesian_gaussian_ab_test
    _check(r, 0.05, (-0.02, 0.12), 0.03572, 0.91923, (0.05131, 0.00131))
    assert r.effect == "relative" and r.method == "gaussian-effect-flat-prior"


def test_growthbook_gaussian_informative_prior():
    # test_bayesian_gaussian_ab_test_informative: GaussianPrior(mean=0.1, variance=0.1, proper=True)
    r = bayesian_test(A, B, prior=GaussianPrior(0.1, math.sqrt(0.1), proper=True))
    _check(r, 0.05063, (-0.01893, 0.12019), 0.03549, 0.92315, (0.05186, 0.00123))
    assert r.method == "gaussian-effect-proper-prior"


def test_growthbook_binomial():
    # test_bayesian_binomial_ab_test: ProportionStatistic(sum=49, n=100) vs (sum=51, n=100)
    r = bayesian_test(ProportionStats(100, 49), ProportionStats(100, 51))
    _check(r, 0.04082, (-0.24779, 0.32943), 0.14725, 0.60918, (0.0814, 0.04058))


def test_growthbook_missing_data():
    for c, t in ((MeanStats(0, 0.0, 0.0), MeanStats(0, 0.0, 0.0)), (ProportionStats(0, 0), ProportionStats(0, 0))):
        r = bayesian_test(c, t)
        assert r.chance_to_win == 0.5 and r.expected == 0 and r.note == "an arm has no users"


def test_growthbook_relative_prior_rescaled_for_absolute_effect():
    # test_bayesian_effect_relative_effect: n=100, sum=1000, sum_squares=200000 vs sum=1100, 200005;
    # GaussianPrior(mean=1, variance=1, proper=True); "rescaling keeps CTW pretty close" (places=2)
    c, t = MeanStats.from_sums(100, 1000, 200000), MeanStats.from_sums(100, 1100, 200005)
    prior = GaussianPrior(1.0, 1.0, proper=True)
    ab, rel = bayesian_test(c, t, effect="absolute", prior=prior), bayesian_test(c, t, prior=prior)
    assert round(ab.chance_to_win - rel.chance_to_win, 2) == 0
    # the prior is rescaled by the control mean, so the absolute result does not depend on the units
    c10, t10 = MeanStats(100, 10 * c.mean, 100 * c.var), MeanStats(100, 10 * t.mean, 100 * t.var)
    ab10 = bayesian_test(c10, t10, effect="absolute", prior=prior)
    assert ab10.chance_to_win == pytest.approx(ab.chance_to_win, rel=1e-12)
    assert ab10.expected == pytest.approx(10 * ab.expected, rel=1e-12)


def test_flat_prior_equals_the_delta_method_z_interval():
    """Same sufficient statistics as the frequentist tests: with a flat prior the credible interval is
    the z interval of the same estimate (relative: GrowthBook's delta method; absolute: the z test)."""
    z = welch_ttest(A, B, test="z", relative="delta")
    r = bayesian_test(A, B)
    assert r.ci == pytest.approx(z.rel_ci, rel=1e-12) and r.stddev == pytest.approx(z.rel_se, rel=1e-12)
    a = bayesian_test(A, B, effect="absolute")
    assert a.ci == pytest.approx(z.abs_ci, rel=1e-12)
    assert a.chance_to_win == pytest.approx(1 - z.p_value / 2, rel=1e-12)


def test_ratio_uses_the_linearised_delta_method_statistics():
    rng = np.random.default_rng(3)
    den = rng.poisson(20, (2, 400)).astype(float)
    num = rng.binomial(den.astype(int), [[0.1], [0.11]]).astype(float)
    c, t = RatioStats.from_arrays(num[0], den[0]), RatioStats.from_arrays(num[1], den[1])
    r = bayesian_test(c, t, effect="absolute")
    lin = bayesian_test(linearize(c), linearize(t), effect="absolute")
    assert r.expected == lin.expected and r.ci == lin.ci
    assert r.ci == pytest.approx(ratio_ttest(c, t, test="z").abs_ci, rel=1e-12)


def test_inverse_metric_and_risk_closed_form():
    r, inv = bayesian_test(A, B), bayesian_test(A, B, inverse=True)
    assert inv.chance_to_win == pytest.approx(1 - r.chance_to_win)
    assert (inv.risk_control, inv.risk_treatment) == (r.risk_treatment, r.risk_control)
    # E[max(X, 0)] - E[max(-X, 0)] = E[X]
    assert r.risk_control - r.risk_treatment == pytest.approx(r.expected, rel=1e-12)
    x = np.random.default_rng(0).normal(0.05, 0.03572, 2_000_000)
    assert expected_positive_part(0.05, 0.03572) == pytest.approx(np.maximum(x, 0).mean(), abs=1e-4)


def test_degenerate_inputs_and_errors():
    zero = bayesian_test(MeanStats(10, 0.0, 1.0), B)
    assert zero.chance_to_win == 0.5 and "control mean is 0" in zero.note
    flat = bayesian_test(MeanStats(10, 1.0, 0.0), MeanStats(10, 1.0, 0.0))
    assert flat.chance_to_win == 0.5 and "zero variance" in flat.note
    with pytest.raises(StatsInputError, match="effect"):
        bayesian_test(A, B, effect="log")
    with pytest.raises(StatsInputError, match="proper prior"):
        GaussianPrior(0.0, 0.0, proper=True)


def test_decision_rule():
    assert bayes_rejects(0.976) and bayes_rejects(0.024) and not bayes_rejects(0.96, 0.975)
    assert not bayes_rejects(0.02, 0.95, two_sided=False) and bayes_rejects(0.951, 0.95, two_sided=False)
