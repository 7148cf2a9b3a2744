"""The result record every test in :mod:`abtest.stats` returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

Alternative = Literal["two-sided", "greater", "less"]
ALTERNATIVES: tuple[str, ...] = ("two-sided", "greater", "less")


def join_notes(*notes: str) -> str:
    """The non-empty ``notes`` joined with ``"; "`` (how :attr:`TestResult.note` combines reasons)."""
    return "; ".join(n for n in notes if n)


@dataclass(frozen=True)
class TestResult:
    """One comparison of a treatment arm against a control arm on one metric.

    Deltas are ``treatment - control`` (``abs_delta``) and ``treatment / control - 1``
    (``rel_delta``). ``abs_ci`` / ``rel_ci`` are ``(low, high)``; one-sided alternatives give a
    half-open interval (``-inf``/``inf`` on the open side). ``p_value`` is always computed from the
    absolute difference (the relative interval is a presentation of the same data, not a second
    test). ``df`` is ``inf`` for normal (z) tests. ``se``/``statistic`` are those of the absolute test;
``rel_se`` is the delta-method standard error of ``rel_delta``. ``p_value_adjusted``/``correction`` are filled in by
    :func:`abtest.stats.multiple.correct_results`, which also sets ``alpha_adjusted`` (the level of the
    multiplicity-adjusted interval, consistent with the adjusted p-value) and ``ci_adjustment``;
    ``abs_ci_adjusted``/``rel_ci_adjusted`` are the test's intervals at that level
    (:func:`abtest.stats.multiple.adjusted_intervals`). ``note`` explains any ``nan``.
    """

    __test__ = False  # not a pytest class

    metric: str
    control: str
    treatment: str
    control_value: float
    treatment_value: float
    abs_delta: float
    abs_ci: tuple[float, float]
    rel_delta: float
    rel_ci: tuple[float, float]
    p_value: float
    alternative: str
    alpha: float
    method: str
    n_control: int
    n_treatment: int
    df: float
    se: float = math.nan
    statistic: float = math.nan
    rel_se: float = math.nan
    p_value_adjusted: float | None = None
    correction: str | None = None
    note: str = ""
    alpha_adjusted: float | None = None
    abs_ci_adjusted: tuple[float, float] | None = None
    rel_ci_adjusted: tuple[float, float] | None = None
    ci_adjustment: str | None = None

    @property
    def significant(self) -> bool:
        """``True`` when the (adjusted, if present) p-value is below ``alpha``."""
        p = self.p_value if self.p_value_adjusted is None else self.p_value_adjusted
        return bool(p < self.alpha)

    def with_(self, **changes: Any) -> TestResult:
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists; nan/inf stay floats)."""
        d = asdict(self)
        d["abs_ci"] = list(self.abs_ci)
        d["rel_ci"] = list(self.rel_ci)
        for k in ("abs_ci_adjusted", "rel_ci_adjusted"):
            d[k] = None if d[k] is None else list(d[k])
        d["significant"] = self.significant
        return d
