"""Sample-ratio mismatch (SRM) check: observed users per arm vs the configured split.

``method``: ``"chi2"`` (default) Pearson chi-square goodness of fit, any number of arms;
``"chi2-yates"`` the same with Yates' continuity correction (``|O - E| - 0.5``, two arms only;
tea-tasting ``SampleRatio(method="norm", correction=True)``); ``"binomial"`` the exact two-sided
binomial test of the first arm's count (two arms only; tea-tasting ``method="binom"``,
scipy ``binomtest``).

Conventions: arms whose configured weight is 0 are dropped before the test (their users, if any,
are reported in ``dropped`` — users in a zero-weight arm are an assignment bug worth a look, but
they carry no information about the split of the remaining arms); the expected counts are the
total of the kept arms times their renormalised weights; ``df = k - 1``; the check **fails** when
``p < threshold`` (default 0.001, the usual SRM threshold: a false alarm once in 1,000 healthy
experiments).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

from abtest.stats.errors import StatsInputError

SRM_THRESHOLD = 0.001
SRM_METHODS: tuple[str, ...] = ("chi2", "chi2-yates", "binomial")


@dataclass(frozen=True)
class SRMResult:
    """Outcome of :func:`srm_check`; ``observed``/``expected`` map arm → users (kept arms only)."""

    passed: bool
    p_value: float
    statistic: float
    df: int
    threshold: float
    observed: dict[str, int]
    expected: dict[str, float]
    dropped: dict[str, int] = field(default_factory=dict)
    note: str = ""
    method: str = "chi2"

    def to_dict(self) -> dict:
        """JSON-ready dict."""
        return {
            "passed": self.passed,
            "p_value": self.p_value,
            "statistic": self.statistic,
            "df": self.df,
            "threshold": self.threshold,
            "observed": dict(self.observed),
            "expected": dict(self.expected),
            "dropped": dict(self.dropped),
            "note": self.note,
            "method": self.method,
        }


def srm_check(
    observed: Mapping[str, int],
    weights: Mapping[str, float],
    *,
    threshold: float = SRM_THRESHOLD,
    method: str = "chi2",
) -> SRMResult:
    """Goodness-of-fit of ``observed`` users per arm against ``weights`` (any positive scale).

    Every arm in ``weights`` must appear in ``observed`` (0 users is allowed) and vice versa.
    With fewer than two kept arms there is nothing to test: ``passed=True``, ``p=nan``, and a note
    (GrowthBook reports p = 1 there; ``nan`` keeps "not tested" apart from "no evidence of a mismatch").
    """
    if method not in SRM_METHODS:
        raise StatsInputError(f"SRM method must be one of {SRM_METHODS}, got {method!r}")
    missing = set(weights) ^ set(observed)
    if missing:
        raise StatsInputError(
            f"arms {sorted(missing)} appear in only one of observed counts / configured weights"
        )
    for arm, w in weights.items():
        if not (math.isfinite(w) and w >= 0):
            raise StatsInputError(f"weight must be finite and >= 0, got {w}", arm=arm)
        if observed[arm] < 0:
            raise StatsInputError(f"observed count must be >= 0, got {observed[arm]}", arm=arm)
    kept = [a for a in weights if weights[a] > 0]
    dropped = {a: int(observed[a]) for a in weights if weights[a] == 0}
    obs = np.array([observed[a] for a in kept], dtype=np.float64)
    total = obs.sum()
    if len(kept) < 2 or total == 0:
        return SRMResult(
            True,
            math.nan,
            math.nan,
            max(len(kept) - 1, 0),
            threshold,
            {a: int(observed[a]) for a in kept},
            {a: float(observed[a]) for a in kept},
            dropped,
            "fewer than two arms with positive weight and users: nothing to test",
            method,
        )
    w = np.array([weights[a] for a in kept], dtype=np.float64)
    exp = total * w / w.sum()
    if method != "chi2" and len(kept) != 2:
        raise StatsInputError(f"SRM method {method!r} needs exactly two arms with positive weight, got {kept}")
    if method == "binomial":
        stat = float(obs[0])
        p = sps.binomtest(int(obs[0]), int(total), float(w[0] / w.sum())).pvalue
    elif method == "chi2-yates":
        stat = float((np.maximum(np.abs(obs - exp) - 0.5, 0.0) ** 2 / exp).sum())
        p = sps.chi2.sf(stat, 1)
    else:
        stat, p = sps.chisquare(obs, exp)
    note = f"users in zero-weight arms: {dropped}" if any(dropped.values()) else ""
    return SRMResult(
        bool(p >= threshold),
        float(p),
        float(stat),
        len(kept) - 1,
        threshold,
        {a: int(o) for a, o in zip(kept, obs, strict=True)},
        {a: float(e) for a, e in zip(kept, exp, strict=True)},
        dropped,
        note,
        method,
    )
