"""Guardrails: one-sided non-inferiority with absolute and relative margins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from abtest.stats import MeanStats, ProportionStats, RatioStats, StatsInputError, non_inferiority


def test_absolute_margin_matches_shifted_one_sided_welch():
    rng = np.random.default_rng(0)
    c, t = rng.normal(10, 2, 3000), rng.normal(9.95, 2, 3000)
    g = non_inferiority(MeanStats.from_array(c), MeanStats.from_array(t), margin=0.2, metric="long_clicks")
    ref = sps.ttest_ind(t + 0.2, c, equal_var=False, alternative="greater")
    assert g.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert g.passed == (ref.pvalue < 0.05)
    assert g.passed and g.bound > -0.2
    assert g.test.abs_ci[1] == math.inf


def test_fails_when_worse_than_margin_and_lower_is_better_mirror():
    c, t = MeanStats(5000, 10.0, 4.0), MeanStats(5000, 9.6, 4.0)
    assert not non_inferiority(c, t, margin=0.2).passed
    # latency: lower is better, treatment 0.4 slower, margin 0.5 → passes
    lat = non_inferiority(
        MeanStats(50_000, 100.0, 25.0), MeanStats(50_000, 100.4, 25.0), margin=0.5, higher_is_better=False
    )
    assert lat.passed and lat.bound < 0.5
    assert not non_inferiority(
        MeanStats(50_000, 100.0, 25.0), MeanStats(50_000, 100.6, 25.0), margin=0.5, higher_is_better=False
    ).passed


def test_relative_margin_on_log_scale_agrees_with_relative_bound():
    c, t = RatioStats(4000, 3.0, 10.0, 9.0, 50.0, 15.0), RatioStats(4000, 2.96, 10.0, 9.0, 50.0, 15.0)
    for margin in (0.005, 0.01, 0.03, 0.05):
        g = non_inferiority(c, t, margin=margin, relative=True)
        assert g.passed == (g.bound > -margin)
        assert g.test.method == "non-inferiority-delta-welch-t"
    assert not non_inferiority(c, t, margin=0.005, relative=True).passed
    assert non_inferiority(c, t, margin=0.05, relative=True).passed


def test_proportion_guardrail_and_errors():
    g = non_inferiority(ProportionStats(20_000, 3_000), ProportionStats(20_000, 2_990), margin=0.01)
    assert g.passed and g.test.df == math.inf
    assert g.to_dict()["test"]["alternative"] == "greater"
    with pytest.raises(StatsInputError, match="margin"):
        non_inferiority(MeanStats(10, 1, 1), MeanStats(10, 1, 1), margin=-1)
    with pytest.raises(StatsInputError, match="same kind"):
        non_inferiority(MeanStats(10, 1, 1), ProportionStats(10, 1), margin=0.1)
