"""SRM check vs scipy.stats.chisquare."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from abtest.stats import SRM_THRESHOLD, StatsInputError, srm_check


def test_matches_chisquare_with_configured_split():
    obs = {"control": 10_120, "treatment": 9_880, "holdout": 5_000}
    w = {"control": 0.4, "treatment": 0.4, "holdout": 0.2}
    r = srm_check(obs, w)
    ref = sps.chisquare([10_120, 9_880, 5_000], [10_000, 10_000, 5_000])
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert r.statistic == pytest.approx(ref.statistic, rel=1e-12)
    assert r.passed and r.df == 2 and r.threshold == SRM_THRESHOLD == 0.001
    assert r.expected == pytest.approx({"control": 10_000.0, "treatment": 10_000.0, "holdout": 5_000.0})


def test_detects_mismatch_and_drops_zero_weight_arms():
    r = srm_check({"a": 10_500, "b": 9_500, "off": 7}, {"a": 1, "b": 1, "off": 0})
    ref = sps.chisquare([10_500, 9_500])
    assert not r.passed
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert r.dropped == {"off": 7} and "off" not in r.observed and "zero-weight" in r.note


def test_threshold_and_edge_cases():
    r = srm_check({"a": 1030, "b": 970}, {"a": 1, "b": 1})
    assert r.passed  # p ≈ 0.18
    assert not srm_check({"a": 1030, "b": 970}, {"a": 1, "b": 1}, threshold=0.5).passed
    single = srm_check({"a": 100, "b": 0}, {"a": 1, "b": 0})
    assert single.passed and math.isnan(single.p_value)
    with pytest.raises(StatsInputError, match="only one"):
        srm_check({"a": 1}, {"a": 1, "b": 1})
    with pytest.raises(StatsInputError, match="arm 'b'"):
        srm_check({"a": 1, "b": 1}, {"a": 1, "b": -1})
    assert srm_check({"a": 1, "b": 2}, {"a": 1, "b": 1}).to_dict()["observed"] == {"a": 1, "b": 2}
