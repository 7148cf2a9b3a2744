"""Calibration of the analysis pipeline: many A/A (or A/B) experiments on vectorised per-user tables.

:func:`simulate_user_arrays` draws ``(E, N)`` per-user count tables for ``E`` experiments at once
(heterogeneous users, pre-period covariates correlated with the experiment period, an optional
relative ``effect`` on the treatment's click probability). :func:`false_positive_rates` runs every
catalogue metric through the same code the analysis uses (:func:`abtest.analysis.compare_metric` on
:class:`abtest.moments.Moments`) and returns the share of experiments each metric calls significant
— for A/A data this must be close to ``alpha``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from abtest.analysis import AnalysisConfig, compare_metric
from abtest.metrics import Metric, resolve_metrics
from abtest.moments import Moments, metric_variables


@dataclass
class UserArrays:
    """Per-user columns, each ``(E, N)`` int64, and ``treat (E, N)`` bool assignment."""

    columns: dict[str, np.ndarray]
    treat: np.ndarray


def simulate_user_arrays(n_experiments: int, n_users: int, seed: int = 0, effect: float = 0.0, days: int = 14,
                         pre_days: int = 7) -> UserArrays:
    """Draw per-user tables for ``n_experiments`` experiments of ``n_users`` users (50/50 split)."""
    rng = np.random.default_rng(seed)
    shape = (n_experiments, n_users)
    rate = rng.gamma(1.5, 1.2 / 1.5, size=shape)
    ctr = rng.beta(2.0, 20.0, size=shape)
    treat = rng.random(shape) < 0.5
    cols: dict[str, np.ndarray] = {}
    for prefix, d, lift in (("pre_", pre_days, 0.0), ("", days, effect)):
        searches = rng.poisson(rate * d)
        related = rng.binomial(searches, 0.2)
        impressions = rng.poisson(8.0 * searches)
        clicks = rng.binomial(impressions, np.clip(ctr * (1.0 + lift * treat), 0, 1))
        long_clicks = rng.binomial(clicks, 0.4)
        for name, v in (("searches", searches), ("related_searches", related), ("impressions", impressions),
                        ("clicks", clicks), ("long_clicks", long_clicks)):
            cols[prefix + name] = v
    return UserArrays(cols, treat)


def _group_moments(data: UserArrays, names: list[str], mask: np.ndarray) -> list[Moments]:
    """Per-experiment :class:`Moments` of the users where ``mask (E, N)`` holds, all experiments at once."""
    x = np.stack([
        (data.columns[v[4:]] > 0).astype(np.float64) if v.startswith("any_") else data.columns[v].astype(np.float64)
        for v in names
    ])  # (V, E, N)
    xm = x * mask[None]
    sums = xm.sum(axis=2)  # (V, E)
    cross = np.einsum("aen,ben->eab", xm, x)  # (E, V, V)
    n = mask.sum(axis=1)
    out = []
    for e in range(mask.shape[0]):
        out.append(Moments(int(n[e]), {v: float(sums[i, e]) for i, v in enumerate(names)},
                           {(a, b): float(cross[e, i, j]) for i, a in enumerate(names) for j, b in enumerate(names)
                            if a <= b}))
    return out


def false_positive_rates(data: UserArrays, metrics: Sequence[Metric] | None = None, alpha: float = 0.05,
                         cuped: bool = True) -> dict[str, float]:
    """Share of experiments where each metric's two-sided test rejects at ``alpha`` (guardrails included,
    tested two-sided as decision metrics so the rate is comparable), plus ``"holm_any"``: the share where
    Holm over all these metrics rejects at least one (the family-wise error rate; Holm rejects something
    exactly when ``min p * k < alpha``)."""
    metrics = [replace(m, role="decision", margin=None) for m in (metrics or resolve_metrics(None))]
    cfg = AnalysisConfig(control="control", alpha=alpha, cuped=cuped)
    names = sorted({v for m in metrics for v in metric_variables(m, cuped)})
    mc_all = _group_moments(data, names, ~data.treat)
    mt_all = _group_moments(data, names, data.treat)
    p = np.empty((len(mc_all), len(metrics)))
    for e, (mc, mt) in enumerate(zip(mc_all, mt_all, strict=True)):
        for j, m in enumerate(metrics):
            res, _ = compare_metric(m, mc, mt, ("control", "treatment"), cfg, cuped)
            p[e, j] = res.p_value
    out = {m.name: float(np.mean(p[:, j] < alpha)) for j, m in enumerate(metrics)}
    out["holm_any"] = float(np.mean(p.min(axis=1) * len(metrics) < alpha))
    return out
