"""The metric catalogue: what each A/B metric is, over which per-user columns, and its role.

Kinds (the unit of analysis is always the user, the randomisation unit):

``mean``        per-user mean of a count column, e.g. impressions per user.
``ratio``       ``Σ numerator / Σ denominator`` over the arm's users (delta method), e.g. the
                long-click rate ``Σ long_clicks / Σ impressions``.
``proportion``  share of users whose ``numerator`` column is > 0, e.g. users with a long click.

Roles: ``decision`` metrics are tested two-sided and Holm-corrected as one family; ``guardrail``
metrics are one-sided non-inferiority tests against a relative ``margin`` (treatment may be at most
``margin`` worse than control, in the ``higher_is_better`` direction); ``secondary`` metrics are
reported uncorrected. CUPED uses the ``pre_<column>`` columns when the per-user table has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from abtest.stats.errors import StatsInputError

Kind = Literal["mean", "ratio", "proportion"]
Role = Literal["decision", "guardrail", "secondary"]


class UnknownMetricError(ValueError):
    """A metric name that is not in the catalogue."""


@dataclass(frozen=True)
class Metric:
    """One metric. ``denominator`` only for ratios; ``margin`` (relative, > 0) only for guardrails."""

    name: str
    kind: Kind
    numerator: str
    denominator: str | None = None
    role: Role = "decision"
    higher_is_better: bool | None = True
    margin: float | None = None
    description: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        """The per-user columns this metric reads."""
        return (self.numerator,) if self.denominator is None else (self.numerator, self.denominator)

    @property
    def covariates(self) -> tuple[str, ...]:
        """The pre-period columns CUPED would use (``pre_<column>``)."""
        return tuple(f"pre_{c}" for c in self.columns)

    def __post_init__(self) -> None:
        if (self.kind == "ratio") != (self.denominator is not None):
            raise ValueError(f"metric {self.name!r}: a denominator is required for ratio metrics and only for them")
        if self.role == "guardrail" and (self.margin is None or self.margin <= 0 or self.higher_is_better is None):
            raise ValueError(f"guardrail {self.name!r} needs a positive relative margin and a direction")


CATALOGUE: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("long_click_rate", "ratio", "long_clicks", "impressions",
               description="long clicks (dwell >= 35 s) per impression, Σ long_clicks / Σ impressions"),
        Metric("impressions_per_user", "mean", "impressions", description="result impressions per user"),
        Metric("related_searches_per_user", "mean", "related_searches", higher_is_better=None,
               description="searches started from a related-search suggestion, per user"),
        Metric("long_click_user_share", "proportion", "long_clicks",
               description="share of users with at least one long click"),
        Metric("ctr", "ratio", "clicks", "impressions", role="secondary",
               description="clicks per impression, Σ clicks / Σ impressions"),
        Metric("long_clicks_per_user", "mean", "long_clicks", role="secondary", description="long clicks per user"),
        Metric("searches_per_user", "mean", "searches", role="guardrail", margin=0.02,
               description="searches per user; may not drop by more than 2%"),
        Metric("clicks_per_user", "mean", "clicks", role="guardrail", margin=0.02,
               description="clicks per user; may not drop by more than 2%"),
    )
}

DEFAULT_METRICS: tuple[str, ...] = tuple(CATALOGUE)


def resolve_metrics(names: Sequence[str] | None = None) -> list[Metric]:
    """The catalogue entries for ``names`` (all when ``None``); raises on an unknown name."""
    if not names:
        return list(CATALOGUE.values())
    unknown = [n for n in names if n not in CATALOGUE]
    if unknown:
        raise UnknownMetricError(f"unknown metric(s) {unknown}; known metrics: {sorted(CATALOGUE)}")
    return [CATALOGUE[n] for n in dict.fromkeys(names)]


def required_columns(metrics: Sequence[Metric]) -> list[str]:
    """Per-user columns the metrics need, in first-use order."""
    return list(dict.fromkeys(c for m in metrics for c in m.columns))


def check_caps(caps: dict[str, float] | None, metrics: Sequence[Metric]) -> None:
    """Raise unless every capped metric is analysed and not a proportion (0/1 values are never capped)."""
    by_name = {m.name: m for m in metrics}
    for name in caps or {}:
        if name not in by_name:
            raise UnknownMetricError(f"--cap {name}: not one of the analysed metrics {sorted(by_name)}")
        if by_name[name].kind == "proportion":
            raise StatsInputError(f"--cap {name}: proportion metrics (0/1 per user) are not capped")
