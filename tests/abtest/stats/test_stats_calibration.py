"""Calibration: simulated A/A experiments keep the false-positive rate at alpha; a planted effect is
detected at the predicted power. Per-user data are generated with numpy in one vectorised draw per
experiment batch (fixed seeds), reduced to sufficient statistics, then tested."""

from __future__ import annotations

import numpy as np
import pytest

from abtest.stats import (
    CovariateMeanStats,
    CovariateRatioStats,
    MeanStats,
    ProportionStats,
    RatioStats,
    cuped_ttest,
    metric_power,
    proportion_test,
    ratio_ttest,
    welch_ttest,
)

EXPERIMENTS, USERS = 1000, 600


def _simulate(seed: int, experiments: int, users: int, lift: float = 0.0) -> dict[str, np.ndarray]:
    """Per-user arrays of shape ``(experiments, 2, users)``; arm 1 gets ``lift`` on impressions."""
    rng = np.random.default_rng(seed)
    shape = (experiments, 2, users)
    activity = rng.gamma(1.2, 8.0, size=shape)  # heavy-tailed user activity
    pre_imps = rng.poisson(activity).astype(float)
    arm_mult = np.ones((1, 2, 1))
    arm_mult[0, 1, 0] += lift
    imps = rng.poisson(activity * arm_mult).astype(float)
    rate = rng.beta(2.0, 6.0, size=shape)
    clicks = rng.binomial(imps.astype(np.int64), rate).astype(float)
    pre_clicks = rng.binomial(pre_imps.astype(np.int64), rate).astype(float)
    return {"imps": imps, "clicks": clicks, "pre_imps": pre_imps, "pre_clicks": pre_clicks}


def _moments(cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per (experiment, arm) means ``(E, 2, k)`` and ddof=1 covariances ``(E, 2, k, k)``."""
    x = np.stack(cols, axis=-1)  # (E, 2, n, k)
    mean = x.mean(axis=2)
    d = x - mean[:, :, None, :]
    cov = np.einsum("eani,eanj->eaij", d, d) / (x.shape[2] - 1)
    return mean, cov


def _p_values(sim: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    imps, clicks = sim["imps"], sim["clicks"]
    e, _, n = imps.shape
    m, c = _moments([clicks, imps, sim["pre_clicks"], sim["pre_imps"]])
    mi, ci = _moments([imps, sim["pre_imps"]])
    any_click = (clicks > 0).sum(axis=2)
    out = {k: np.empty(e) for k in ("mean", "ratio", "proportion", "cuped_mean", "cuped_ratio")}
    for i in range(e):
        arms = (0, 1)
        ms = [MeanStats(n, mi[i, a, 0], ci[i, a, 0, 0]) for a in arms]
        out["mean"][i] = welch_ttest(*ms).p_value
        rs = [
            RatioStats(n, m[i, a, 0], m[i, a, 1], c[i, a, 0, 0], c[i, a, 1, 1], c[i, a, 0, 1]) for a in arms
        ]
        out["ratio"][i] = ratio_ttest(*rs).p_value
        ps = [ProportionStats(n, int(any_click[i, a])) for a in arms]
        out["proportion"][i] = proportion_test(*ps).p_value
        cm = [
            CovariateMeanStats(n, mi[i, a, 0], mi[i, a, 1], ci[i, a, 0, 0], ci[i, a, 1, 1], ci[i, a, 0, 1])
            for a in arms
        ]
        out["cuped_mean"][i] = cuped_ttest(*cm).p_value
        cr = [CovariateRatioStats.from_moments(n, m[i, a], c[i, a]) for a in arms]
        out["cuped_ratio"][i] = cuped_ttest(*cr).p_value
    return out


@pytest.fixture(scope="module")
def aa_p_values() -> dict[str, np.ndarray]:
    return _p_values(_simulate(20261121, EXPERIMENTS, USERS))


@pytest.mark.parametrize("variant", ["mean", "ratio", "proportion", "cuped_mean", "cuped_ratio"])
def test_aa_false_positive_rate(aa_p_values, variant):
    fpr = float(np.mean(aa_p_values[variant] < 0.05))
    assert 0.03 <= fpr <= 0.07, f"{variant}: FPR {fpr:.3f} over {EXPERIMENTS} A/A experiments"
    # p-values are roughly uniform under the null, not just right at 0.05
    assert 0.07 <= float(np.mean(aa_p_values[variant] < 0.1)) <= 0.13


def test_planted_effect_detected_at_predicted_power():
    lift, experiments = 0.12, 400
    sim = _simulate(7, experiments, USERS, lift=lift)
    p = _p_values(sim)
    control = MeanStats.from_array(sim["imps"][:, 0].ravel())
    treatment = MeanStats.from_array(sim["imps"][:, 1].ravel())
    # power() assumes one per-user variance for both arms: use the average of the two
    baseline = MeanStats(control.n, control.mean, (control.var + treatment.var) / 2)
    predicted = metric_power(baseline, lift * control.mean, USERS)
    observed = float(np.mean(p["mean"] < 0.05))
    assert observed == pytest.approx(predicted, abs=0.08)
    assert float(np.mean(p["cuped_mean"] < 0.05)) > observed + 0.1  # CUPED buys power
    assert observed > 0.4
    assert (
        float(np.mean(p["ratio"] < 0.05)) < 0.1
    )  # the lift is on impressions only: the click rate is unchanged
