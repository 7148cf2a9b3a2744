"""abtest.stats.ppi against the reference implementation ``ppi_py`` and a hand-worked golden value.

Reference functions: ``ppi_py.ppi_mean_pointestimate``, ``ppi_py.ppi_mean_ci`` and
``ppi_py.ppi_mean_pval`` (Y, Yhat, Yhat_unlabeled; ``lam=None`` = PPI++ power tuning, clipped to
[0, 1]; ``lam=1`` = classic PPI). ``ppi_py`` names the one-sided alternatives ``larger``/``smaller``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from abtest.stats.errors import StatsInputError
from abtest.stats.ppi import ppi_lambda, ppi_mean, ppi_paired_delta, split_labelled

ppi_py = pytest.importorskip("ppi_py")

PPI_ALT = {"two-sided": "two-sided", "greater": "larger", "less": "smaller"}


def _data(seed: int, n: int = 80, big_n: int = 1500, rho: float = 0.8):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=n + big_n)
    y_all = 0.4 + 0.2 * z + 0.1 * rng.normal(size=z.size)
    f_all = 0.3 + rho * 0.25 * z + 0.15 * rng.normal(size=z.size)  # biased, scaled prediction
    return y_all[:n], f_all[:n], f_all[n:]


@pytest.mark.parametrize("seed", range(6))
def test_point_estimate_ci_and_lambda_match_ppi_py(seed: int) -> None:
    y, f, fu = _data(seed, rho=[0.1, 0.5, 0.9, 1.2, 0.0, 0.8][seed])
    res = ppi_mean(y, f, fu, alpha=0.1)
    assert res.estimate == pytest.approx(float(ppi_py.ppi_mean_pointestimate(y, f, fu, lam=None)[0]), abs=1e-10)
    lo, hi = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.1, lam=None)
    assert res.ci[0] == pytest.approx(float(lo[0]), abs=1e-10)
    assert res.ci[1] == pytest.approx(float(hi[0]), abs=1e-10)
    # λ: recover ppi_py's tuned λ from its point estimate (linear in λ) and compare
    e0 = float(ppi_py.ppi_mean_pointestimate(y, f, fu, lam=0.0)[0])
    e1 = float(ppi_py.ppi_mean_pointestimate(y, f, fu, lam=1.0)[0])
    e_tuned = float(ppi_py.ppi_mean_pointestimate(y, f, fu, lam=None)[0])
    if abs(e1 - e0) > 1e-6:
        assert res.lam == pytest.approx((e_tuned - e0) / (e1 - e0), abs=1e-8)
    assert 0.0 <= res.lam <= 1.0
    assert res.n_labelled == y.size and res.n_unlabelled == fu.size and res.method == "ppi++"


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("lam", [1.0, 0.37])
def test_fixed_lambda_ci_and_p_value_match_ppi_py(alternative: str, lam: float) -> None:
    y, f, fu = _data(11)
    res = ppi_mean(y, f, fu, lam=lam, alternative=alternative, null=0.35)
    lo, hi = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.05, lam=lam, alternative=PPI_ALT[alternative])
    assert res.ci[0] == pytest.approx(float(np.ravel(lo)[0]), abs=1e-10)
    assert res.ci[1] == pytest.approx(float(np.ravel(hi)[0]), abs=1e-10)
    p = ppi_py.ppi_mean_pval(y, f, fu, null=0.35, lam=lam, alternative=PPI_ALT[alternative])
    assert res.p_value == pytest.approx(float(np.ravel(p)[0]), abs=1e-10)
    assert res.method == ("ppi" if lam == 1.0 else "ppi(λ=0.37)")


def test_tuned_p_value_matches_ppi_py_at_the_same_lambda() -> None:
    # ppi_mean_pval(lam=None) does not clip λ, ppi_mean_ci(lam=None) does; compare at our (clipped) λ
    y, f, fu = _data(3)
    res = ppi_mean(y, f, fu, null=0.4)
    p = ppi_py.ppi_mean_pval(y, f, fu, null=0.4, lam=res.lam)
    assert res.p_value == pytest.approx(float(np.ravel(p)[0]), abs=1e-10)


def test_golden_classic_ppi_by_hand() -> None:
    # y = [1, 0, 1, 1], f = [0.8, 0.2, 0.6, 1.0], f_unlabelled = [0.5, 0.7, 0.9, 0.1, 0.3, 0.5]
    # rectifier y - f = [0.2, -0.2, 0.4, 0.0]: mean 0.1, population var (0.01+0.09+0.09+0.01)/4 = 0.05
    # imputed mean 3.0/6 = 0.5, population var of f_u (0+0.04+0.16+0.16+0.04+0)/6 = 0.4/6
    # θ = 0.6; se² = 0.05/4 + (0.4/6)/6 = 0.0125 + 0.0111111 = 0.0236111
    y = np.array([1.0, 0.0, 1.0, 1.0])
    f = np.array([0.8, 0.2, 0.6, 1.0])
    fu = np.array([0.5, 0.7, 0.9, 0.1, 0.3, 0.5])
    res = ppi_mean(y, f, fu, lam=1.0, alpha=0.05)
    se = math.sqrt(0.0125 + 0.4 / 36)
    assert res.estimate == pytest.approx(0.6, abs=1e-12) and res.se == pytest.approx(se, abs=1e-12)
    assert res.ci == pytest.approx((0.6 - 1.959963984540054 * se, 0.6 + 1.959963984540054 * se), abs=1e-12)
    assert res.p_value == pytest.approx(2 * 0.5 * math.erfc(0.6 / se / math.sqrt(2)), rel=1e-9)
    # λ = Cov_pop(y, f) / ((1 + n/N) Var_samp(f ∪ f_u)): ȳ = 0.75, f̄ = 0.65, cov = 0.45 / 4 = 0.1125;
    # f ∪ f_u has mean 0.56 and Σ(x − 0.56)² = 0.804, so Var = 0.804 / 9; λ = 0.1125 / (5/3 · 0.804/9)
    assert ppi_lambda(y, f, fu, clip=False) == pytest.approx(0.1125 / (5 / 3 * 0.804 / 9), abs=1e-12)
    assert ppi_mean(y, f, fu).lam == pytest.approx(0.7555970149253731, abs=1e-12)


def test_paired_delta_is_ppi_on_differences() -> None:
    rng = np.random.default_rng(5)
    big = 1200
    base = rng.normal(0.5, 0.15, size=big)
    hc, ht = base + rng.normal(0, 0.05, big), base + 0.03 + rng.normal(0, 0.05, big)
    fc, ft = 0.8 * hc + rng.normal(0, 0.03, big) + 0.1, 0.8 * ht + rng.normal(0, 0.03, big) + 0.05
    judged = rng.random(big) < 0.1
    hc_obs, ht_obs = np.where(judged, hc, np.nan), np.where(judged, ht, np.nan)
    res = ppi_paired_delta(fc, ft, hc_obs, ht_obs, metric="ndcg@10")
    y, f, fu = split_labelled(ft - fc, ht_obs - hc_obs)
    assert res.abs_delta == pytest.approx(float(ppi_py.ppi_mean_pointestimate(y, f, fu, lam=None)[0]), abs=1e-10)
    lo, hi = ppi_py.ppi_mean_ci(y, f, fu, alpha=0.05, lam=None)
    assert res.abs_ci == pytest.approx((float(lo[0]), float(hi[0])), abs=1e-10)
    assert res.treatment_value - res.control_value == pytest.approx(res.abs_delta, abs=1e-12)
    assert res.n_control == judged.sum() and res.method == "ppi++-paired" and math.isinf(res.df)
    # the PPI variance of the arms' values and covariance reproduce the delta's se
    assert res.rel_ci[0] < res.rel_delta < res.rel_ci[1]
    # one-arm-only labels are treated as unlabelled and noted
    ht_obs[np.flatnonzero(judged)[0]] = np.nan
    assert "labelled in one arm only" in ppi_paired_delta(fc, ft, hc_obs, ht_obs).note


def test_all_labelled_reduces_to_classical_and_bad_input_raises() -> None:
    y = np.array([0.2, 0.4, 0.9])
    res = ppi_mean(y, y * 0.5, np.array([]), lam=1.0)
    assert res.lam == 0.0 and res.estimate == pytest.approx(0.5) and "no unlabelled" in res.note
    assert res.se == pytest.approx(np.std(y) / math.sqrt(3))
    with pytest.raises(StatsInputError, match="need >= 2 labelled"):
        ppi_mean([1.0], [1.0], [0.5, 0.2])
    with pytest.raises(StatsInputError, match="non-finite"):
        ppi_mean([1.0, np.nan], [1.0, 0.3], [0.5])
    with pytest.raises(StatsInputError, match="alternative"):
        ppi_mean([1.0, 0.0], [1.0, 0.3], [0.5], alternative="bigger")
    with pytest.raises(StatsInputError, match="differ in length"):
        ppi_paired_delta(np.zeros(3), np.zeros(2), np.zeros(3), np.zeros(3))
    assert ppi_lambda([1.0, 0.0], [0.5, 0.5], [0.5, 0.5]) == 0.0  # constant model → λ = 0
