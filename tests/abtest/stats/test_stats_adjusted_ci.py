"""Multiplicity-adjusted intervals agree with the adjusted p-values on a hand-made family.

Family of five decision metrics with unadjusted two-sided p ≈ 0.001, 0.012, 0.035, 0.045, 0.30.
Holm (m = 5): 5·0.001 = 0.005 and 4·0.012 = 0.048 are rejected; 3·0.035 = 0.105 stops the procedure,
so the metrics with p = 0.035 and 0.045 — significant unadjusted — are not. Holm-step levels:
0.05/5, 0.05/4, then 0.05/3 for the three not rejected.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from abtest.stats import MeanStats, welch_ttest
from abtest.stats.multiple import adjusted_alphas, adjusted_intervals, correct_results

TARGET_P = (0.001, 0.012, 0.035, 0.045, 0.30)
SIGNS = (1, -1, 1, -1, 1)


def _family():
    n, var = 5000, 4.0
    se = math.sqrt(2 * var / n)
    out = []
    for i, (p, s) in enumerate(zip(TARGET_P, SIGNS, strict=True)):
        z = float(-special.ndtri(p / 2))
        out.append(welch_ttest(MeanStats(n, 10.0, var), MeanStats(n, 10.0 + s * z * se, var), metric=f"m{i}"))
    return out


def _rerun(r, level):
    c, t = MeanStats(r.n_control, r.control_value, 4.0), MeanStats(r.n_treatment, r.treatment_value, 4.0)
    return welch_ttest(c, t, alpha=level, metric=r.metric)


def _excludes_zero(ci) -> bool:
    return bool(ci[0] > 0 or ci[1] < 0)


@pytest.mark.parametrize("method", ["holm", "bonferroni", "fdr_bh", "none"])
def test_adjusted_ci_excludes_zero_iff_adjusted_p_below_alpha(method: str):
    fam = adjusted_intervals(correct_results(_family(), method), _rerun)
    for r in fam:
        assert _excludes_zero(r.abs_ci_adjusted) == (r.p_value_adjusted < 0.05) == r.significant, (method, r.metric)


def test_holm_family_by_hand():
    base = _family()
    assert [round(r.p_value, 3) for r in base] == [0.001, 0.012, 0.035, 0.045, 0.3]
    fam = adjusted_intervals(correct_results(base, "holm"), _rerun)
    assert [r.significant for r in fam] == [True, True, False, False, False]
    assert [r.alpha_adjusted for r in fam] == pytest.approx([0.01, 0.0125, 0.05 / 3, 0.05 / 3, 0.05 / 3])
    assert {r.ci_adjustment for r in fam} == {"holm-step"}
    # the two metrics Holm does not reject are unadjusted-significant: the adjusted CI is what changes
    for r, raw in zip(fam[2:4], base[2:4], strict=True):
        assert _excludes_zero(raw.abs_ci) and not _excludes_zero(r.abs_ci_adjusted)
    # wider than the unadjusted interval, narrower than (or equal to) Bonferroni's
    bonf = adjusted_intervals(correct_results(base, "bonferroni"), _rerun)
    for h, b, raw in zip(fam, bonf, base, strict=True):
        assert raw.abs_ci[0] > h.abs_ci_adjusted[0] >= b.abs_ci_adjusted[0] - 1e-15


def test_levels_of_each_method_and_nan():
    p = [0.001, 0.012, np.nan, 0.035, 0.045, 0.30]
    holm = adjusted_alphas(p, "holm")
    assert np.isnan(holm[2]) and holm[[0, 1, 3]] == pytest.approx([0.01, 0.0125, 0.05 / 3])
    assert adjusted_alphas(p, "bonferroni")[[0, 5]] == pytest.approx([0.01, 0.01])
    # BH: 0.001·5/1, 0.012·5/2 = 0.03 < 0.05; 0.035·5/3, 0.045·5/4 > 0.05 → R = 2 → FCR level 2·0.05/5
    assert adjusted_alphas(p, "fdr_bh")[[0, 4]] == pytest.approx([0.02, 0.02])
    assert adjusted_alphas([0.5, 0.6], "fdr_bh") == pytest.approx([0.025, 0.025])
    assert adjusted_alphas(p, "none")[0] == 0.05
    d = correct_results(_family(), "holm")[0].to_dict()
    assert d["alpha_adjusted"] == pytest.approx(0.01) and d["abs_ci_adjusted"] is None
