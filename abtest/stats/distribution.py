"""Reference distributions shared by the tests: Student t with ``df`` degrees of freedom, or the
standard normal when ``df`` is ``inf``. All functions accept numpy arrays (vectorised)."""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from abtest.stats.errors import StatsInputError
from abtest.stats.result import ALTERNATIVES


def check_alternative(alternative: str, metric: str = "") -> str:
    """Return ``alternative`` or raise :class:`StatsInputError` if it is not one of :data:`ALTERNATIVES`."""
    if alternative not in ALTERNATIVES:
        raise StatsInputError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}", metric)
    return alternative


def check_alpha(alpha: float, metric: str = "") -> float:
    """Return ``alpha`` or raise unless ``0 < alpha < 1``."""
    if not 0.0 < alpha < 1.0:
        raise StatsInputError(f"alpha must be in (0, 1), got {alpha}", metric)
    return alpha


def _sf(x: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Upper tail ``P(X > x)`` of t(df), normal where ``df`` is ``inf`` (scipy.special: fast, vectorised)."""
    return np.where(np.isinf(df), special.ndtr(-x), special.stdtr(np.where(np.isinf(df), 1.0, df), -x))


def _ppf(q: float, df: np.ndarray) -> np.ndarray:
    return np.where(np.isinf(df), special.ndtri(q), special.stdtrit(np.where(np.isinf(df), 1.0, df), q))


def _out(v: np.ndarray) -> float | np.ndarray:
    return float(v) if np.ndim(v) == 0 else v


def p_value(stat: float | np.ndarray, df: float | np.ndarray, alternative: str) -> float | np.ndarray:
    """p-value of a t (``df`` finite) or z (``df = inf``) statistic under ``alternative``."""
    x = np.asarray(stat, dtype=np.float64)
    d = np.asarray(df, dtype=np.float64)
    if alternative == "two-sided":
        return _out(np.minimum(1.0, 2.0 * _sf(np.abs(x), d)))
    if alternative == "greater":
        return _out(_sf(x, d))
    return _out(_sf(-x, d))


def critical_value(alpha: float, df: float | np.ndarray, alternative: str) -> float | np.ndarray:
    """Positive quantile ``q`` such that the interval ``est ± q·se`` (two-sided: ``1-α/2`` quantile,
    one-sided: ``1-α``) has coverage ``1-α``."""
    level = 1.0 - alpha / 2.0 if alternative == "two-sided" else 1.0 - alpha
    return _out(_ppf(level, np.asarray(df, dtype=np.float64)))


def interval(est: float, se: float, q: float, alternative: str) -> tuple[float, float]:
    """``(low, high)`` around ``est``; one-sided alternatives leave the far side infinite."""
    if alternative == "greater":
        return (est - q * se, math.inf)
    if alternative == "less":
        return (-math.inf, est + q * se)
    return (est - q * se, est + q * se)
