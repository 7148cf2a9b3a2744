"""Paired bootstrap confidence interval for the difference of a metric between two systems.

Both systems are scored on the same evaluation queries, so queries are the resampling unit and
each replicate draws one multiset of queries used for *both* systems (the pairing removes the
between-query variance that the two systems share).

The metric is a ratio of per-query sums, ``Σ num / Σ den``: with ``den`` = pairs per query and
``num`` = pairs hit, it is the pair-level Recall@k of :mod:`encoders.eval.retrieval`; with
``den = 1`` it is a plain mean over queries (nDCG, P@8). The interval is the percentile interval
of the replicate differences; the point estimate is the full-sample difference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class BootstrapCI:
    """``diff`` = metric(a) − metric(b) with a ``level`` percentile CI from ``reps`` replicates.

    ``p_value`` is the two-sided bootstrap share of replicates on the other side of zero
    (``2 × min(P(d ≤ 0), P(d ≥ 0))``, capped at 1).
    """

    diff: float
    low: float
    high: float
    level: float
    reps: int
    seed: int
    p_value: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @property
    def significant(self) -> bool:
        """True when the interval excludes zero."""
        return bool(self.low > 0.0 or self.high < 0.0)


def paired_bootstrap_diff(
    num_a: np.ndarray,
    num_b: np.ndarray,
    den: np.ndarray | None = None,
    reps: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapCI:
    """Paired bootstrap CI of ``Σnum_a/Σden − Σnum_b/Σden`` over queries.

    ``num_a``, ``num_b``, ``den``: ``(Q,)`` per-query values (``den=None`` → all ones, i.e. the mean
    over queries). Replicates are drawn as multinomial query counts ``(reps, Q)`` from a seeded
    ``numpy`` generator, so the result is reproducible for a given ``seed``.
    """
    a = np.asarray(num_a, dtype=np.float64)
    b = np.asarray(num_b, dtype=np.float64)
    d = np.ones_like(a) if den is None else np.asarray(den, dtype=np.float64)
    if not (a.shape == b.shape == d.shape) or a.ndim != 1:
        raise ValueError(f"num_a, num_b and den must be equal-length 1-D arrays, got {a.shape}, {b.shape}, {d.shape}")
    if a.size == 0 or d.sum() <= 0:
        raise ValueError("bootstrap needs at least one query with a positive denominator")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    point = float((a.sum() - b.sum()) / d.sum())
    rng = np.random.default_rng(seed)
    n = a.size
    diffs = np.empty(reps, dtype=np.float64)
    step = max(1, 2_000_000 // max(n, 1))  # bound the (chunk, Q) count matrix to ~16 MB
    for s in range(0, reps, step):
        r = min(step, reps - s)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=r).astype(np.float64)  # (r, Q)
        dsum = counts @ d
        dsum[dsum == 0] = np.nan  # a replicate without any pair carries no information
        diffs[s : s + r] = (counts @ (a - b)) / dsum
    diffs = diffs[np.isfinite(diffs)]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    p = min(1.0, 2.0 * min(np.mean(diffs <= 0.0), np.mean(diffs >= 0.0)))
    return BootstrapCI(
        diff=point, low=float(low), high=float(high), level=level, reps=int(diffs.size), seed=seed, p_value=float(p)
    )
