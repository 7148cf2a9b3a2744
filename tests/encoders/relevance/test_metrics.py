"""Per-query relevance metrics: golden values worked by hand, Kendall tau-b against scipy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.stats import kendalltau

from encoders.relevance.metrics import (
    exp_gain,
    grade_accuracy,
    kendall_tau_b,
    linear_gain,
    mean_absolute_error,
    ndcg_from_scores,
    query_metrics,
    ranked_gains,
)
from encoders.relevance.pairs import GradeScale

DISCRETE = GradeScale(1.0, 3.0, (1.0, 2.0, 3.0))
CONTINUOUS = GradeScale(1.0, 3.0)
L3 = math.log2(3.0)


def test_gains_by_hand() -> None:
    np.testing.assert_allclose(exp_gain(np.array([1.0, 2.0, 3.0, 1.5]), 1.0), [0.0, 3.0, 15.0, 1.0])
    np.testing.assert_allclose(linear_gain(np.array([1.0, 2.0, 3.0, 1.5]), 1.0), [0.0, 1.0, 2.0, 0.5])


def test_ndcg_three_items_ranked_2_3_1() -> None:
    # grades 3, 2, 1; the system ranks the grade-2 item first, then grade 3, then grade 1
    grades = np.array([3.0, 2.0, 1.0])
    scores = np.array([0.5, 0.9, 0.1])
    # exp gains 15, 3, 0: DCG = 3/1 + 15/log2(3); IDCG = 15/1 + 3/log2(3)
    exp = ndcg_from_scores(scores, exp_gain(grades, 1.0))
    assert exp == pytest.approx((3 + 15 / L3) / (15 + 3 / L3))
    assert exp == pytest.approx(0.737826, abs=1e-6)
    # linear gains 2, 1, 0: DCG = 1 + 2/log2(3); IDCG = 2 + 1/log2(3)
    lin = ndcg_from_scores(scores, linear_gain(grades, 1.0))
    assert lin == pytest.approx((1 + 2 / L3) / (2 + 1 / L3))
    assert lin == pytest.approx(0.859719, abs=1e-6)
    # the perfect order scores 1; the reversed order scores DCG(0, 3, 15) / IDCG
    assert ndcg_from_scores(grades, exp_gain(grades, 1.0)) == pytest.approx(1.0)
    assert ndcg_from_scores(-grades, exp_gain(grades, 1.0)) == pytest.approx((3 / L3 + 15 / 2) / (15 + 3 / L3))


def test_ndcg_cut_off_at_k() -> None:
    grades = np.array([1.0, 1.0, 3.0])  # the only relevant item ranked third
    scores = np.array([3.0, 2.0, 1.0])
    assert ndcg_from_scores(scores, exp_gain(grades, 1.0), k=2) == 0.0
    assert ndcg_from_scores(scores, exp_gain(grades, 1.0), k=3) == pytest.approx(1 / 2)  # 15/log2(4) / 15
    assert math.isnan(ndcg_from_scores(scores, np.zeros(3)))  # nothing to gain


def test_ties_worst_and_average_by_hand() -> None:
    grades = np.array([3.0, 1.0, 2.0])
    scores = np.array([1.0, 1.0, 0.0])  # the grade-3 and grade-1 items tie at the top
    g = exp_gain(grades, 1.0)  # 15, 0, 3
    idcg = 15 + 3 / L3
    # worst: grade 1 before grade 3 → gains 0, 15, 3
    assert ndcg_from_scores(scores, g, ties="worst") == pytest.approx((15 / L3 + 3 / 2) / idcg)
    # average: both tied positions hold (15 + 0) / 2
    assert ndcg_from_scores(scores, g, ties="average") == pytest.approx((7.5 + 7.5 / L3 + 3 / 2) / idcg)
    # a constant scorer gets the worst order under "worst"
    assert ndcg_from_scores(np.zeros(3), g, ties="worst") == pytest.approx(ndcg_from_scores(-grades, g))


@pytest.mark.parametrize("seed", range(5))
def test_average_ties_equal_the_mean_over_all_orders_of_the_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 3, size=6).astype(float)
    gains = exp_gain(rng.integers(1, 4, size=6).astype(float), 1.0)
    disc = 1 / np.log2(np.arange(2, 8))
    idcg = float(np.sort(gains)[::-1] @ disc)
    # every order consistent with descending scores (ties in any order), equally likely
    values = [float(gains[list(p)] @ disc) / idcg for p in itertools.permutations(range(6))
              if np.all(np.diff(scores[list(p)]) <= 0)]
    assert ndcg_from_scores(scores, gains, k=10, ties="average") == pytest.approx(np.mean(values))
    assert ndcg_from_scores(scores, gains, k=10, ties="worst") == pytest.approx(min(values))


def test_ranked_gains_rejects_nan_and_unknown_ties() -> None:
    with pytest.raises(ValueError, match="NaN"):
        ranked_gains(np.array([np.nan, 1.0]), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="ties"):
        ranked_gains(np.array([0.0, 1.0]), np.array([1.0, 0.0]), ties="random")
    with pytest.raises(ValueError, match="equal-length"):
        ranked_gains(np.array([0.0, 1.0]), np.array([1.0]))


def test_kendall_tau_golden_values() -> None:
    # pairs (0,1) discordant, (0,2) and (1,2) concordant → (2 − 1) / 3
    assert kendall_tau_b(np.array([0.9, 0.5, 0.1]), np.array([2.0, 3.0, 1.0])) == pytest.approx(1 / 3)
    # a tie in scores: 2 concordant, 0 discordant; 2 untied score pairs, 3 untied grade pairs → 2 / sqrt(6)
    assert kendall_tau_b(np.array([2.0, 1.0, 1.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(2 / math.sqrt(6))
    assert kendall_tau_b(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau_b(np.ones(4), np.arange(4.0)))
    assert math.isnan(kendall_tau_b(np.ones(1), np.ones(1)))


@pytest.mark.parametrize("seed", range(20))
def test_kendall_tau_matches_scipy_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 30))
    x = rng.integers(0, 4, size=n).astype(float)  # many ties on both sides
    y = np.round(rng.uniform(1, 3, size=n) * 3) / 3
    expected = kendalltau(x, y).statistic
    got = kendall_tau_b(x, y)
    if np.isnan(expected):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def test_grade_accuracy_and_mae_by_hand() -> None:
    pred = np.array([2.6, 1.4, 2.4])  # rounds to 3, 1, 2
    grades = np.array([3.0, 2.0, 2.0])
    assert grade_accuracy(pred, grades, DISCRETE) == pytest.approx(2 / 3)
    assert mean_absolute_error(pred, grades) == pytest.approx((0.4 + 0.6 + 0.4) / 3)
    assert math.isnan(grade_accuracy(pred, grades, CONTINUOUS))


def test_query_metrics() -> None:
    grades = np.array([3.0, 2.0, 1.0])
    m = query_metrics(np.array([0.5, 0.9, 0.1]), grades, DISCRETE)
    assert m.kendall_tau == pytest.approx(1 / 3)
    assert m.ndcg_exp == pytest.approx((3 + 15 / L3) / (15 + 3 / L3))
    assert m.ndcg_linear == pytest.approx((1 + 2 / L3) / (2 + 1 / L3))
    assert math.isnan(m.grade_accuracy) and math.isnan(m.mae)  # a similarity score is not a grade
    g = query_metrics(np.array([2.9, 2.2, 1.6]), grades, DISCRETE, predicts_grades=True)
    assert g.grade_accuracy == pytest.approx(2 / 3) and g.mae == pytest.approx((0.1 + 0.2 + 0.6) / 3)
    flat = query_metrics(np.zeros(3), grades, DISCRETE)  # orders nothing: tau 0, every position the mean gain 6
    assert flat.kendall_tau == 0.0
    assert flat.ndcg_exp == pytest.approx((6 + 6 / L3 + 6 / 2) / (15 + 3 / L3))
    worst = query_metrics(np.zeros(3), grades, DISCRETE, ties="worst")  # gains 0, 3, 15
    assert worst.ndcg_exp == pytest.approx((3 / L3 + 15 / 2) / (15 + 3 / L3))
    with pytest.raises(ValueError, match="two or more distinct grades"):
        query_metrics(np.array([1.0, 2.0]), np.array([2.0, 2.0]), DISCRETE)
