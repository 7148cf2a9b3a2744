"""Per-query relevance (nDCG@K, P@8) and the paired comparison over queries."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from abtest.relevance import align, compare_relevance, paired_test, query_relevance
from abtest.stats import StatsInputError
from encoders.eval.ranking_metrics import ndcg_at_k, precision_at_k

JUDGED = {
    "oak table": {"p1": 3.0, "p2": 2.0, "p3": 1.0, "p4": 3.0},
    "brass hook": {"p5": 1.0, "p6": 2.5},
    "led bulb": {"p7": 1.0},
}


def test_query_relevance_reuses_ranking_metrics_conventions():
    served = {
        "oak table": ["p9", "p1", "p2"],
        "brass hook": ["p6", "p5"],
        "led bulb": ["p7"],
        "no judgments": ["p1"],
    }
    r = query_relevance(served, JUDGED, k=10, p_k=8, relevant_grade=2.0, min_grade=1.0)
    assert r.queries == ("oak table", "brass hook", "led bulb")  # unjudged queries are not scored
    # p9 is unjudged → grade 0 (gain 0); ideal DCG uses all judged items of the query
    assert r.ndcg[0] == pytest.approx(
        ndcg_at_k([math.nan, 3.0, 2.0], [3.0, 2.0, 1.0, 3.0], k=10, min_grade=1.0)
    )
    assert (
        r.precision[0]
        == pytest.approx(precision_at_k([math.nan, 3.0, 2.0], k=8, relevant_grade=2.0))
        == 2 / 8
    )
    assert math.isnan(r.ndcg[2])  # only the lowest grade → no positive gain → undefined
    assert r.as_dict("precision")["brass hook"] == 1 / 8


def _per_query(seed: int, q: int = 300, gain: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.beta(4, 4, size=q)
    return base, np.clip(base + gain + rng.normal(0, 0.08, size=q), 0, 1)


def test_paired_t_matches_scipy_ttest_rel():
    c, t = _per_query(0)
    r = paired_test(c, t, metric="ndcg@10")
    ref = sps.ttest_rel(t, c)
    assert r.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert r.df == c.size - 1
    ci = ref.confidence_interval(0.95)
    assert r.abs_ci == pytest.approx((ci.low, ci.high), rel=1e-9)
    assert r.method == "paired-t" and r.n_control == r.n_treatment == c.size


def test_bootstrap_and_permutation_agree_with_t():
    c, t = _per_query(1)
    tt = paired_test(c, t)
    bs = paired_test(c, t, method="bootstrap", n_resamples=4000, seed=3)
    pm = paired_test(c, t, method="permutation", n_resamples=4000, seed=3)
    assert bs.abs_ci == pytest.approx(tt.abs_ci, abs=0.15 * (tt.abs_ci[1] - tt.abs_ci[0]))
    assert bs.rel_ci[0] < bs.rel_delta < bs.rel_ci[1]
    assert bs.p_value == tt.p_value  # bootstrap changes the interval only
    assert pm.p_value == pytest.approx(tt.p_value, abs=0.02) or (pm.p_value < 0.01 and tt.p_value < 0.01)
    assert pm.abs_ci == tt.abs_ci
    again = paired_test(c, t, method="bootstrap", n_resamples=4000, seed=3)
    assert again.abs_ci == bs.abs_ci  # seeded


def test_permutation_null_is_calibrated_and_one_sided():
    c, t = _per_query(2, q=60, gain=0.0)
    pm = paired_test(c, t, method="permutation", n_resamples=2000, seed=0)
    assert pm.p_value > 0.05
    up = paired_test(*_per_query(4, gain=0.03), method="permutation", alternative="greater", n_resamples=2000)
    assert up.p_value < 0.01 and up.abs_ci[1] == math.inf


def test_nan_pairs_dropped_and_errors():
    c = np.array([0.5, np.nan, 0.7, 0.4])
    t = np.array([0.6, 0.8, np.nan, 0.5])
    r = paired_test(c, t)
    assert r.n_control == 2 and "2 queries dropped" in r.note
    with pytest.raises(StatsInputError, match="queries"):
        paired_test(np.array([0.1, np.nan]), np.array([0.2, 0.3]), metric="p@8")
    with pytest.raises(StatsInputError, match="length"):
        paired_test(np.zeros(3), np.zeros(4))


def test_compare_relevance_pairs_by_query():
    served_c = {"oak table": ["p3", "p2"], "brass hook": ["p5"], "led bulb": ["p7"]}
    served_t = {"oak table": ["p1", "p4"], "brass hook": ["p6", "p5"], "only treatment": ["p1"]}
    rc = query_relevance(served_c, JUDGED, relevant_grade=2.0, min_grade=1.0)
    rt = query_relevance(served_t, JUDGED, relevant_grade=2.0, min_grade=1.0)
    qs, _, _ = align(rc.as_dict("ndcg"), rt.as_dict("ndcg"))
    assert qs == ["oak table", "brass hook"]
    ndcg, prec = compare_relevance(rc, rt)
    assert ndcg.metric == "ndcg@10" and prec.metric == "p@8"
    assert ndcg.n_control == 2 and ndcg.abs_delta > 0 and prec.abs_delta > 0
