"""Calibration of the whole statistics path on >= 500 A/A experiments (vectorised per-user tables)."""

from __future__ import annotations

import time

import pytest

from abtest.calibration import false_positive_rates, simulate_user_arrays
from abtest.metrics import CATALOGUE


@pytest.fixture(scope="module")
def aa_rates() -> dict[str, float]:
    t0 = time.perf_counter()
    rates = false_positive_rates(simulate_user_arrays(1000, 1000, seed=11), cuped=True)
    assert time.perf_counter() - t0 < 20.0
    return rates


@pytest.mark.parametrize("metric", sorted(CATALOGUE))
def test_aa_false_positive_rate_is_alpha(aa_rates: dict[str, float], metric: str) -> None:
    assert 0.03 <= aa_rates[metric] <= 0.07, aa_rates


def test_holm_controls_family_wise_error(aa_rates: dict[str, float]) -> None:
    assert aa_rates["holm_any"] <= 0.07, aa_rates


def test_effect_gives_power() -> None:
    rates = false_positive_rates(simulate_user_arrays(200, 1000, seed=5, effect=0.1),
                                 metrics=[CATALOGUE["long_click_rate"], CATALOGUE["impressions_per_user"]])
    assert rates["long_click_rate"] > 0.3  # a 10% click lift is often detected ...
    assert rates["impressions_per_user"] < 0.1  # ... and does not leak into a metric it cannot move
