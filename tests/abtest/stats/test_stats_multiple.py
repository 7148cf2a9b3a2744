"""Multiple-testing corrections vs statsmodels multipletests."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from abtest.stats import (
    DECISION_CORRECTION,
    SEGMENT_CORRECTION,
    MeanStats,
    StatsInputError,
    adjust_pvalues,
    correct_results,
    welch_ttest,
)

P = np.array([0.001, 0.008, 0.012, 0.04, 0.2, 0.03, 0.7])


@pytest.mark.parametrize("method", ["holm", "fdr_bh", "bonferroni"])
def test_matches_multipletests(method):
    adj, reject = adjust_pvalues(P, method)
    ref_reject, ref_adj, _, _ = multipletests(P, alpha=0.05, method=method)
    np.testing.assert_allclose(adj, ref_adj, rtol=1e-12)
    np.testing.assert_array_equal(reject, ref_reject)


def test_defaults_and_nan_handling():
    assert DECISION_CORRECTION == "holm" and SEGMENT_CORRECTION == "fdr_bh"
    adj, reject = adjust_pvalues([0.01, math.nan, 0.04])
    ref = multipletests([0.01, 0.04], method="holm")[1]
    assert math.isnan(adj[1]) and not reject[1]
    np.testing.assert_allclose(adj[[0, 2]], ref)
    with pytest.raises(StatsInputError):
        adjust_pvalues([0.1], "sidak-ish")


def test_correct_results_sets_adjusted_p():
    rng = np.random.default_rng(0)
    res = [
        welch_ttest(
            MeanStats.from_array(rng.normal(0, 1, 200)),
            MeanStats.from_array(rng.normal(s, 1, 200)),
            metric=f"m{i}",
        )
        for i, s in enumerate([0.0, 0.3, 0.05])
    ]
    out = correct_results(res)
    ref = multipletests([r.p_value for r in res], method="holm")[1]
    assert [o.p_value_adjusted for o in out] == pytest.approx(list(ref))
    assert all(o.correction == "holm" for o in out)
    assert out[1].significant == (ref[1] < 0.05)
    with pytest.raises(StatsInputError, match="alpha"):
        correct_results([res[0], res[1].with_(alpha=0.1)])
