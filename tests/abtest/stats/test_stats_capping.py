"""Percentile capping on hand-worked examples (no peer publishes a capping golden test).

Hand computation: ``x = (0, 1, ..., 8, 100)``, ``n = 10``; the 0.9 quantile by linear interpolation
sits at position ``0.9·(n-1) = 8.1`` between the order statistics ``8`` and ``100``:
``8 + 0.1·(100 - 8) = 17.2``. Only the user with 100 is above it. Ignoring zeros, the 9 values
``(1..8, 100)`` put it at position ``0.9·8 = 7.2``: ``8 + 0.2·92 = 26.4``.
"""

from __future__ import annotations

import numpy as np
import pytest

from abtest.stats import StatsInputError
from abtest.stats.capping import cap_column, cap_ratio, cap_value, check_quantile

X = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 100], dtype=float)


def test_hand_worked_cap():
    assert cap_value(X, 0.9) == pytest.approx(17.2, rel=1e-12)
    capped, info = cap_column(X, 0.9, metric="m", column="impressions")
    assert capped.max() == pytest.approx(17.2) and capped[:9].tolist() == X[:9].tolist()
    assert (info.n_users, info.n_capped, info.share_capped) == (10, 1, 0.1)
    assert info.to_dict()["share_capped"] == 0.1 and info.column == "impressions"
    # the mean drops from 13.6 to (36 + 17.2) / 10
    assert capped.mean() == pytest.approx(5.32)


def test_ignore_zeros_and_empty():
    assert cap_value(X, 0.9, ignore_zeros=True) == pytest.approx(26.4, rel=1e-12)
    assert np.isnan(cap_value(np.zeros(5), 0.9, ignore_zeros=True))
    same, info = cap_column(np.zeros(5), 0.9, ignore_zeros=True)
    assert same.tolist() == [0.0] * 5 and info.n_capped == 0


def test_ratio_caps_numerator_and_denominator_separately():
    num = np.array([0, 1, 1, 2, 50], dtype=float)
    den = np.array([10, 10, 20, 30, 1000], dtype=float)
    n, d, (cn, cd) = cap_ratio(num, den, 0.75, metric="ctr")
    # positions 0.75·4 = 3: exactly the 4th order statistic of each column
    assert (cn.cap, cd.cap) == (2.0, 30.0)
    assert n.tolist() == [0, 1, 1, 2, 2] and d.tolist() == [10, 10, 20, 30, 30]
    assert (cn.column, cd.column, cn.n_capped, cd.n_capped) == ("numerator", "denominator", 1, 1)


def test_quantile_must_be_inside_the_unit_interval():
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(StatsInputError, match="quantile"):
            check_quantile(bad)
    with pytest.raises(StatsInputError, match="finite"):
        cap_value(np.array([1.0, np.nan]), 0.9)
