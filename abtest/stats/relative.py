"""Confidence intervals for the relative lift ``treatment / control - 1``.

Two methods, both from the two arms' estimates and their sampling variances:

* ``"log"`` (default) — delta method on the log scale: ``log(T/C)`` has variance
  ``v_T/T² + v_C/C² - 2 c/(T·C)``; the interval ``exp(log(T/C) ± q·se) - 1`` is asymmetric and
  never crosses ``-100%``. Needs ``T > 0`` and ``C > 0``.
* ``"fieller"`` — Fieller's theorem: the set of ratios ``ρ`` with ``(T - ρC)² <= q²(v_T - 2ρc + ρ²v_C)``.
  Exact for normal estimates, but unbounded when the control mean is not clearly non-zero
  (``C² < q² v_C``); then the interval is ``(-inf, inf)`` with a note.

``q`` is the same quantile as the absolute test (t with the Welch df, or z), so the relative and
absolute intervals have the same nominal level. Neither method defines the p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from abtest.stats.distribution import critical_value

RELATIVE_METHODS: tuple[str, ...] = ("log", "fieller")


@dataclass(frozen=True)
class RelativeInterval:
    """``rel_delta = T/C - 1`` and its interval ``(low, high)``; ``note`` explains any ``nan``/``inf``."""

    rel_delta: float
    low: float
    high: float
    note: str = ""

    @property
    def ci(self) -> tuple[float, float]:
        """``(low, high)``."""
        return (self.low, self.high)


def relative_interval(
    control_value: float,
    control_var: float,
    treatment_value: float,
    treatment_var: float,
    *,
    cov: float = 0.0,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    df: float = math.inf,
    method: str = "log",
) -> RelativeInterval:
    """Relative lift and its interval.

    ``control_var``/``treatment_var`` are sampling variances of the two estimates (``var/n``), ``cov``
    their covariance (0 for independent arms, non-zero for paired designs).
    """
    if method not in RELATIVE_METHODS:
        raise ValueError(f"relative method must be one of {RELATIVE_METHODS}, got {method!r}")
    c, t = float(control_value), float(treatment_value)
    if c == 0.0 or not math.isfinite(c):
        return RelativeInterval(math.nan, math.nan, math.nan, "relative delta undefined: control value is 0")
    rel = t / c - 1.0
    q = float(critical_value(alpha, df, alternative))
    if method == "log":
        return _log_interval(c, control_var, t, treatment_var, cov, q, alternative, rel)
    return _fieller_interval(c, control_var, t, treatment_var, cov, q, alternative, rel)


def log_ratio_se(c: float, vc: float, t: float, vt: float, cov: float = 0.0) -> float:
    """Delta-method standard error of ``log(t / c)`` from the sampling variances ``vc``/``vt`` and
    covariance ``cov`` of the two (positive) estimates."""
    return math.sqrt(max(vt / t**2 + vc / c**2 - 2.0 * cov / (t * c), 0.0))


def _log_interval(
    c: float, vc: float, t: float, vt: float, cov: float, q: float, alternative: str, rel: float
) -> RelativeInterval:
    if c <= 0.0 or t <= 0.0:
        return RelativeInterval(
            rel, math.nan, math.nan, "log-scale relative CI needs positive means in both arms"
        )
    se = log_ratio_se(c, vc, t, vt, cov)
    center = math.log(t / c)
    low = math.exp(center - q * se) - 1.0 if alternative != "less" else -1.0
    high = math.exp(center + q * se) - 1.0 if alternative != "greater" else math.inf
    return RelativeInterval(rel, low, high)


def _fieller_interval(
    c: float, vc: float, t: float, vt: float, cov: float, q: float, alternative: str, rel: float
) -> RelativeInterval:
    q2 = q * q
    a = c * c - q2 * vc
    b = t * c - q2 * cov
    cc = t * t - q2 * vt
    disc = b * b - a * cc
    if a <= 0.0 or disc < 0.0:
        return RelativeInterval(
            rel, -math.inf, math.inf, "Fieller interval unbounded: control mean not significantly non-zero"
        )
    root = math.sqrt(disc)
    lo_r, hi_r = (b - root) / a, (b + root) / a
    low = lo_r - 1.0 if alternative != "less" else -math.inf
    high = hi_r - 1.0 if alternative != "greater" else math.inf
    return RelativeInterval(rel, low, high)
