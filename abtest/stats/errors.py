"""The one error type of :mod:`abtest.stats`."""

from __future__ import annotations


class StatsInputError(ValueError):
    """Sufficient statistics that cannot support the requested test.

    Raised (never a bare numpy/scipy error) for *structural* problems: an arm with ``n < 2``,
    negative variance or count, a ratio metric whose denominator mean is zero, mismatched array
    shapes, an unknown ``alternative``. The message names the metric and the arm.

    *Statistical* degeneracies that are legitimate outcomes (both arms with zero variance, a
    relative interval that is undefined because a mean is not positive) do not raise: the result
    carries ``nan`` and :attr:`abtest.stats.result.TestResult.note` says why.
    """

    def __init__(self, message: str, metric: str | None = None, arm: str | None = None):
        self.metric, self.arm = metric, arm
        where = []
        if metric:
            where.append(f"metric '{metric}'")
        if arm:
            where.append(f"arm '{arm}'")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)
