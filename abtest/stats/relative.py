"""Confidence intervals for the relative lift ``treatment / control - 1``.

Three methods, all from the two arms' estimates and their sampling variances:

* ``"log"`` (default) — delta method on the log scale: ``log(T/C)`` has variance
  ``v_T/T² + v_C/C² - 2 c/(T·C)``; the interval ``exp(log(T/C) ± q·se) - 1`` is asymmetric and
  never crosses ``-100%``. Needs ``T > 0`` and ``C > 0``.
* ``"delta"`` — delta method on the relative scale (GrowthBook's convention): ``Var(T/C) ≈
  v_T/C² + v_C·T²/C⁴ - 2c·T/C³``, interval ``T/C - 1 ± q·se`` (symmetric, may cross ``-100%``).
* ``"fieller"`` — Fieller's theorem: the set of ratios ``ρ`` with ``(T - ρC)² <= q²(v_T - 2ρc + ρ²v_C)``.
  Exact for normal estimates, but unbounded when the control mean is not clearly non-zero
  (``C² < q² v_C``); then the interval is ``(-inf, inf)`` with a note.

``q`` is the same quantile as the absolute test (t with the Welch df, or z), so the relative and
absolute intervals have the same nominal level. No method defines the p-value. Every method reports
``se``, the delta-method standard error of ``T/C - 1`` (the ``"delta"`` interval's own SE). One-sided
intervals are half-open with ``±inf`` on the open side for every method.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from abtest.stats.distribution import critical_value
from abtest.stats.errors import StatsInputError

RELATIVE_METHODS: tuple[str, ...] = ("log", "delta", "fieller")


@dataclass(frozen=True)
class RelativeInterval:
    """``rel_delta = T/C - 1``, its interval ``(low, high)`` and delta-method standard error ``se``;
    ``note`` explains any ``nan``/``inf``."""

    rel_delta: float
    low: float
    high: float
    note: str = ""
    se: float = math.nan

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
        raise StatsInputError(f"relative method must be one of {RELATIVE_METHODS}, got {method!r}")
    c, t = float(control_value), float(treatment_value)
    if c == 0.0 or not math.isfinite(c):
        return RelativeInterval(math.nan, math.nan, math.nan, "relative delta undefined: control value is 0")
    rel = t / c - 1.0
    q = float(critical_value(alpha, df, alternative))
    se = relative_se(c, control_var, t, treatment_var, cov)
    if method == "log":
        out = _log_interval(c, control_var, t, treatment_var, cov, q, alternative, rel)
    elif method == "delta":
        out = RelativeInterval(rel, *_half_open(rel - q * se, rel + q * se, alternative))
    else:
        out = _fieller_interval(c, control_var, t, treatment_var, cov, q, alternative, rel)
    return replace(out, se=se)


def relative_se(c: float, vc: float, t: float, vt: float, cov: float = 0.0) -> float:
    """Delta-method standard error of ``t / c - 1``: ``sqrt(v_T/C² + v_C·T²/C⁴ - 2·cov·T/C³)``."""
    return math.sqrt(max(vt / c**2 + vc * t**2 / c**4 - 2.0 * cov * t / c**3, 0.0))


def _half_open(low: float, high: float, alternative: str) -> tuple[float, float]:
    """``(low, high)`` with the open side of a one-sided interval set to ``∓inf``."""
    return (low if alternative != "less" else -math.inf, high if alternative != "greater" else math.inf)


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
    low, high = _half_open(math.exp(center - q * se) - 1.0, math.exp(center + q * se) - 1.0, alternative)
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
    return RelativeInterval(rel, *_half_open(lo_r - 1.0, hi_r - 1.0, alternative))
