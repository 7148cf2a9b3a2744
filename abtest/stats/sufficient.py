"""Sufficient statistics of one experiment arm: everything the tests need, nothing per-event.

Every class is a frozen dataclass of a few floats, so an arm of any size is summarised by one row
(DuckDB ``count``/``avg``/``var_samp``/``covar_samp`` or plain sums). Conventions:

* variances and covariances are **sample** moments, ``ddof=1`` (divide by ``n - 1``);
* the unit of analysis is the randomisation unit (the user): ``n`` counts users, and a ratio
  metric keeps per-user numerator and denominator (``Σ long_clicks / Σ impressions``);
* ``from_sums`` constructors take ``n``, ``Σx``, ``Σx²`` and ``Σxy`` as SQL produces them. They
  subtract large numbers (``Σx² - (Σx)²/n``); when per-user values are huge and nearly constant
  prefer computing ``var_samp``/``covar_samp`` in SQL and building the dataclass directly. Tiny
  negative variances from round-off (within ``ROUNDOFF_RTOL`` of the raw second moment
  ``Σx²/(n-1)``) are clipped to 0; a clearly negative one is impossible input (sums from different
  populations, overflow) and raises :class:`StatsInputError` naming the arm and the moment.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from abtest.stats.errors import StatsInputError

RATIO_COVARIATE_ORDER: tuple[str, ...] = ("num", "den", "pre_num", "pre_den")


ROUNDOFF_RTOL = 1e-9


def _moments_from_sums(
    n: float,
    sums: np.ndarray,
    cross: np.ndarray,
    names: tuple[str, ...] = (),
    metric: str = "",
    arm: str = "",
) -> tuple[np.ndarray, np.ndarray]:
    """Means ``(k,)`` and ddof=1 covariance ``(k, k)`` from ``n``, ``Σx (k,)`` and ``Σxxᵀ (k, k)``.

    ``names`` label the ``k`` variables in the error raised for a clearly negative variance.
    """
    if n < 2:
        raise StatsInputError(f"need n >= 2 users to estimate a variance, got n={n}", metric, arm)
    sums = np.asarray(sums, dtype=np.float64)
    cross = np.asarray(cross, dtype=np.float64)
    mean = sums / n
    cov = (cross - np.outer(sums, sums) / n) / (n - 1)
    raw = np.abs(np.diag(cross)) / (n - 1)
    bad = np.flatnonzero(np.diag(cov) < -ROUNDOFF_RTOL * raw - 1e-300)
    if bad.size:
        i = int(bad[0])
        label = names[i] if i < len(names) else f"variable {i}"
        raise StatsInputError(
            f"variance of {label} from sums is {cov[i, i]:.6g} < 0 beyond round-off "
            f"(Σx²={cross[i, i]:.6g}, (Σx)²/n={sums[i] ** 2 / n:.6g}): the sums are inconsistent",
            metric,
            arm,
        )
    d = np.clip(np.diag(cov), 0.0, None)
    np.fill_diagonal(cov, d)
    return mean, cov


def _moments_from_arrays(*cols: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """``n``, means ``(k,)`` and ddof=1 covariance ``(k, k)`` of ``k`` aligned 1-D arrays."""
    arrs = [np.asarray(c, dtype=np.float64).ravel() for c in cols]
    n = arrs[0].size
    if any(a.size != n for a in arrs):
        raise StatsInputError(f"arrays must have the same length, got {[a.size for a in arrs]}")
    if n < 2:
        raise StatsInputError(f"need n >= 2 users to estimate a variance, got n={n}")
    x = np.vstack(arrs)
    if not np.all(np.isfinite(x)):
        raise StatsInputError("per-user values must be finite (found nan/inf)")
    return n, x.mean(axis=1), np.atleast_2d(np.cov(x, ddof=1))


PairFields = tuple[int, float, float, float, float, float]


def _pair_fields(n: float, mean: np.ndarray, cov: np.ndarray) -> PairFields:
    """``(n, mean_a, mean_b, var_a, var_b, cov_ab)`` of two variables: the fields of
    :class:`RatioStats` and :class:`CovariateMeanStats`."""
    return int(n), float(mean[0]), float(mean[1]), float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])


def _pair_from_arrays(a: np.ndarray, b: np.ndarray) -> PairFields:
    """:func:`_pair_fields` of per-user arrays ``a (n,)`` and ``b (n,)``."""
    return _pair_fields(*_moments_from_arrays(a, b))


def _pair_from_sums(
    n: int,
    sum_a: float,
    sum_b: float,
    sum_a_sq: float,
    sum_b_sq: float,
    sum_ab: float,
    names: tuple[str, str] = ("a", "b"),
    metric: str = "",
    arm: str = "",
) -> PairFields:
    """:func:`_pair_fields` from ``n``, ``Σa``, ``Σb``, ``Σa²``, ``Σb²`` and ``Σab``."""
    m, c = _moments_from_sums(
        n, np.array([sum_a, sum_b]), np.array([[sum_a_sq, sum_ab], [sum_ab, sum_b_sq]]), names, metric, arm
    )
    return _pair_fields(n, m, c)


def _pool(parts: list[tuple[float, np.ndarray, np.ndarray]]) -> tuple[float, np.ndarray, np.ndarray]:
    """Moments of the union of samples given each sample's ``(n, mean, cov ddof=1)``."""
    n = sum(p[0] for p in parts)
    mean = sum(p[0] * p[1] for p in parts) / n
    cross = sum((p[0] - 1) * p[2] + p[0] * np.outer(p[1] - mean, p[1] - mean) for p in parts)
    return n, mean, cross / (n - 1)


@dataclass(frozen=True)
class MeanStats:
    """A per-user mean metric of one arm: ``n`` users, ``mean``, sample variance ``var`` (ddof=1)."""

    n: int
    mean: float
    var: float

    @classmethod
    def from_array(cls, x: np.ndarray) -> MeanStats:
        """From per-user values ``x (n,)``."""
        n, m, c = _moments_from_arrays(x)
        return cls(n, float(m[0]), float(c[0, 0]))

    @classmethod
    def from_sums(cls, n: int, total: float, total_sq: float, *, metric: str = "", arm: str = "") -> MeanStats:
        """From ``n``, ``Σx`` and ``Σx²`` over users (``metric``/``arm`` name the source in errors)."""
        m, c = _moments_from_sums(n, np.array([total]), np.array([[total_sq]]), ("x",), metric, arm)
        return cls(int(n), float(m[0]), float(c[0, 0]))

    @property
    def var_of_mean(self) -> float:
        """Sampling variance of ``mean``: ``var / n``."""
        return self.var / self.n

    def validate(self, metric: str = "", arm: str = "") -> MeanStats:
        """Raise :class:`StatsInputError` unless ``n >= 2``, finite mean, finite ``var >= 0``."""
        if self.n < 2:
            raise StatsInputError(f"need n >= 2 users, got n={self.n}", metric, arm)
        if not math.isfinite(self.mean):
            raise StatsInputError(f"mean is not finite ({self.mean})", metric, arm)
        if not (math.isfinite(self.var) and self.var >= 0):
            raise StatsInputError(f"variance must be finite and >= 0, got {self.var}", metric, arm)
        return self


@dataclass(frozen=True)
class ProportionStats:
    """A per-user binary metric of one arm: ``successes`` of ``n`` users (e.g. users with a long click).

    ``var`` is the binomial variance ``p (1 - p)`` (ddof=0), the convention of the z-tests.
    """

    n: int
    successes: int

    @classmethod
    def from_array(cls, x: np.ndarray) -> ProportionStats:
        """From per-user indicators ``x (n,)`` of 0/1 (or bool)."""
        a = np.asarray(x).ravel()
        if a.size and not np.all((a == 0) | (a == 1)):
            raise StatsInputError("proportion metric values must be 0/1")
        return cls(int(a.size), int(a.sum()))

    @property
    def p(self) -> float:
        """Share of users with the event."""
        return self.successes / self.n if self.n else math.nan

    @property
    def var(self) -> float:
        """Per-user binomial variance ``p (1 - p)``."""
        return self.p * (1.0 - self.p)

    def validate(self, metric: str = "", arm: str = "") -> ProportionStats:
        """Raise :class:`StatsInputError` unless ``n >= 1`` and ``0 <= successes <= n``."""
        if self.n < 1:
            raise StatsInputError(f"need n >= 1 users, got n={self.n}", metric, arm)
        if not 0 <= self.successes <= self.n:
            raise StatsInputError(f"successes must be in [0, n={self.n}], got {self.successes}", metric, arm)
        return self


@dataclass(frozen=True)
class RatioStats:
    """A ratio metric ``Σnum / Σden`` of one arm, randomised by user, as per-user moments.

    ``mean_num``/``mean_den`` are per-user means, ``var_*``/``cov_num_den`` sample moments (ddof=1).
    The estimate is ``ratio = mean_num / mean_den`` (= ``Σnum / Σden``).
    """

    n: int
    mean_num: float
    mean_den: float
    var_num: float
    var_den: float
    cov_num_den: float

    @classmethod
    def from_arrays(cls, num: np.ndarray, den: np.ndarray) -> RatioStats:
        """From per-user numerators ``num (n,)`` and denominators ``den (n,)``."""
        return cls(*_pair_from_arrays(num, den))

    @classmethod
    def from_sums(
        cls,
        n: int,
        sum_num: float,
        sum_den: float,
        sum_num_sq: float,
        sum_den_sq: float,
        sum_num_den: float,
        *,
        metric: str = "",
        arm: str = "",
    ) -> RatioStats:
        """From ``n``, ``Σnum``, ``Σden``, ``Σnum²``, ``Σden²`` and ``Σnum·den`` over users.

        Raises :class:`StatsInputError` (naming ``metric``, ``arm`` and the moment) when a variance
        is negative beyond round-off.
        """
        return cls(*_pair_from_sums(n, sum_num, sum_den, sum_num_sq, sum_den_sq, sum_num_den,
                                    ("numerator", "denominator"), metric, arm))

    @property
    def ratio(self) -> float:
        """``mean_num / mean_den``."""
        return self.mean_num / self.mean_den if self.mean_den != 0 else math.nan

    def validate(self, metric: str = "", arm: str = "") -> RatioStats:
        """Raise :class:`StatsInputError` on ``n < 2``, a zero denominator mean or invalid moments."""
        if self.n < 2:
            raise StatsInputError(f"need n >= 2 users, got n={self.n}", metric, arm)
        if not (math.isfinite(self.mean_den) and self.mean_den != 0):
            raise StatsInputError(
                f"denominator mean is {self.mean_den}; the ratio is undefined (no denominator events)",
                metric,
                arm,
            )
        vals = (self.mean_num, self.var_num, self.var_den, self.cov_num_den)
        if not all(math.isfinite(v) for v in vals) or self.var_num < 0 or self.var_den < 0:
            raise StatsInputError("moments must be finite with variances >= 0", metric, arm)
        return self


@dataclass(frozen=True)
class CovariateMeanStats:
    """A mean metric ``y`` with a pre-experiment covariate ``x`` (CUPED) for one arm (ddof=1)."""

    n: int
    mean_y: float
    mean_x: float
    var_y: float
    var_x: float
    cov_xy: float

    @classmethod
    def from_arrays(cls, y: np.ndarray, x: np.ndarray) -> CovariateMeanStats:
        """From per-user metric ``y (n,)`` and covariate ``x (n,)``."""
        return cls(*_pair_from_arrays(y, x))

    @classmethod
    def from_sums(
        cls,
        n: int,
        sum_y: float,
        sum_x: float,
        sum_y_sq: float,
        sum_x_sq: float,
        sum_xy: float,
        *,
        metric: str = "",
        arm: str = "",
    ) -> CovariateMeanStats:
        """From ``n``, ``Σy``, ``Σx``, ``Σy²``, ``Σx²`` and ``Σxy`` over users."""
        return cls(*_pair_from_sums(n, sum_y, sum_x, sum_y_sq, sum_x_sq, sum_xy, ("metric", "covariate"), metric, arm))

    @property
    def metric(self) -> MeanStats:
        """The unadjusted metric ``y``."""
        return MeanStats(self.n, self.mean_y, self.var_y)

    def moments(self) -> tuple[int, np.ndarray, np.ndarray]:
        """``(n, mean (2,), cov (2, 2))`` in the order ``(y, x)``."""
        cov = np.array([[self.var_y, self.cov_xy], [self.cov_xy, self.var_x]])
        return self.n, np.array([self.mean_y, self.mean_x]), cov


@dataclass(frozen=True)
class CovariateRatioStats:
    """A ratio metric with a pre-experiment ratio covariate (CUPED) for one arm.

    ``mean (4,)`` and ``cov (4, 4)`` (ddof=1) are per-user moments of
    ``(num, den, pre_num, pre_den)`` (see :data:`RATIO_COVARIATE_ORDER`).
    """

    n: int
    mean: tuple[float, float, float, float]
    cov: tuple[tuple[float, ...], ...]

    @classmethod
    def from_arrays(
        cls, num: np.ndarray, den: np.ndarray, pre_num: np.ndarray, pre_den: np.ndarray
    ) -> CovariateRatioStats:
        """From per-user arrays, each ``(n,)``."""
        n, m, c = _moments_from_arrays(num, den, pre_num, pre_den)
        return cls.from_moments(n, m, c)

    @classmethod
    def from_sums(
        cls, n: int, sums: np.ndarray, cross: np.ndarray, *, metric: str = "", arm: str = ""
    ) -> CovariateRatioStats:
        """From ``n``, ``sums (4,) = Σv`` and ``cross (4, 4) = Σ v vᵀ`` over users, order ``(num, den, pre_num, pre_den)``."""
        sums = np.asarray(sums, dtype=np.float64)
        cross = np.asarray(cross, dtype=np.float64)
        if sums.shape != (4,) or cross.shape != (4, 4):
            raise StatsInputError(f"expected sums (4,) and cross (4, 4), got {sums.shape} and {cross.shape}")
        m, c = _moments_from_sums(n, sums, cross, RATIO_COVARIATE_ORDER, metric, arm)
        return cls.from_moments(int(n), m, c)

    @classmethod
    def from_moments(cls, n: int, mean: np.ndarray, cov: np.ndarray) -> CovariateRatioStats:
        """From ``mean (4,)`` and ``cov (4, 4)``."""
        return cls(int(n), tuple(float(v) for v in mean), tuple(tuple(float(v) for v in row) for row in cov))  # type: ignore[arg-type]

    @property
    def metric(self) -> RatioStats:
        """The unadjusted ratio metric."""
        m, c = self.mean, self.cov
        return RatioStats(self.n, m[0], m[1], c[0][0], c[1][1], c[0][1])

    def moments(self) -> tuple[int, np.ndarray, np.ndarray]:
        """``(n, mean (4,), cov (4, 4))``."""
        return self.n, np.asarray(self.mean), np.asarray(self.cov)
