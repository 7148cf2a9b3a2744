"""Proportion metrics per user (share of users with at least one long click): two-sample tests.

Conventions (defaults first; every option is named in ``method``):

* ``test="z"`` (default): normal reference (``df = inf``) with the binomial variance ``p(1-p)/n``
  (ddof = 0) per arm. ``"welch"``: the same variances with a Welch–Satterthwaite df (GrowthBook's
  proportion test); ``"student"``: pooled t with ``df = n_C + n_T - 2``; ``"fisher"``: Fisher's exact
  test of the 2×2 table for the p-value (scipy ``fisher_exact``; the interval stays the Wald one).
* ``variance="unpooled"`` (default): each arm's own ``p(1-p)`` for the test **and** the interval, so
  p < α ⇔ the CI excludes 0. ``variance="pooled"``: the pooled ``p̄(1-p̄)(1/n_C + 1/n_T)`` for the
  test and the interval (tea-tasting ``Proportion(equal_var=True)``).
* ``continuity=False`` (default): with ``True`` the statistic uses ``|Δ| - c`` and the interval is
  widened by ``c = (1/n_C + 1/n_T) / 2`` (Yates; tea-tasting's default, R ``prop.test``).

The legacy ``pooled=True`` keeps its meaning: pooled variance for the **p-value only** (= Pearson
chi-square without continuity correction = ``statsmodels proportions_ztest``), unpooled Wald interval.
"""

from __future__ import annotations

import math

from scipy import stats as sps

from abtest.stats.distribution import check_alternative, critical_value, interval, p_value
from abtest.stats.errors import StatsInputError
from abtest.stats.result import TestResult, join_notes
from abtest.stats.sufficient import ProportionStats
from abtest.stats.ttest import compare_estimates, welch_df

PROPORTION_TESTS: tuple[str, ...] = ("z", "welch", "student", "fisher")
VARIANCES: tuple[str, ...] = ("unpooled", "pooled")


def _method(test: str, variance: str, continuity: bool, pooled: bool) -> str:
    if test == "fisher":
        return "fisher-exact"
    base = {"z": "z", "welch": "welch-t", "student": "student-t"}[test]
    var = "pooled" if (variance == "pooled" or pooled) else "unpooled"
    return f"{var}-{base}" + ("-cc" if continuity else "")


def _corrected(delta: float, cc: float, alternative: str) -> float:
    """``Δ`` moved ``cc`` toward 0 (two-sided: ``sign(Δ)·max(|Δ| - cc, 0)``; one-sided: against H1)."""
    if alternative == "two-sided":
        return math.copysign(max(abs(delta) - cc, 0.0), delta)
    return delta - cc if alternative == "greater" else delta + cc


def fisher_p_value(control: ProportionStats, treatment: ProportionStats, alternative: str = "two-sided") -> float:
    """Fisher's exact p-value of the 2×2 table (``greater``: treatment's share is larger)."""
    table = [
        [treatment.successes, treatment.n - treatment.successes],
        [control.successes, control.n - control.successes],
    ]
    return float(sps.fisher_exact(table, alternative=alternative).pvalue)


def proportion_test(
    control: ProportionStats,
    treatment: ProportionStats,
    *,
    metric: str = "",
    control_name: str = "control",
    treatment_name: str = "treatment",
    alpha: float = 0.05,
    alternative: str = "two-sided",
    relative: str = "log",
    test: str = "z",
    variance: str = "unpooled",
    continuity: bool = False,
    pooled: bool = False,
) -> TestResult:
    """Test and interval for the difference of two proportions (see the module doc for the options)."""
    if test not in PROPORTION_TESTS:
        raise StatsInputError(f"test must be one of {PROPORTION_TESTS}, got {test!r}", metric)
    if variance not in VARIANCES:
        raise StatsInputError(f"variance must be one of {VARIANCES}, got {variance!r}", metric)
    check_alternative(alternative, metric)
    control.validate(metric, control_name)
    treatment.validate(metric, treatment_name)
    nc, nt = control.n, treatment.n
    p_pool = (control.successes + treatment.successes) / (nc + nt)
    if variance == "pooled":
        vc, vt = p_pool * (1.0 - p_pool) / nc, p_pool * (1.0 - p_pool) / nt
    else:
        vc, vt = control.var / nc, treatment.var / nt
    df = math.inf
    if test == "welch":
        df = float(welch_df(vc * nc, nc, vt * nt, nt))
    elif test == "student":
        df = float(nc + nt - 2)
    res = compare_estimates(
        control.p, vc, treatment.p, vt, df=df, n_control=nc, n_treatment=nt,
        method=_method(test, variance, continuity, pooled), metric=metric, control=control_name,
        treatment=treatment_name, alpha=alpha, alternative=alternative, relative=relative,
    )  # fmt: skip
    delta = res.abs_delta
    if test == "fisher":
        return res.with_(p_value=fisher_p_value(control, treatment, alternative), statistic=math.nan)
    se_test = res.se
    if pooled and variance == "unpooled":
        se_test = math.sqrt(p_pool * (1.0 - p_pool) * (1.0 / nc + 1.0 / nt))
    if se_test == 0.0:  # no variation in either arm (pooled or not)
        return res.with_(statistic=math.nan, p_value=math.nan)
    # the pooled test may be defined when neither arm varies on its own (0 % vs 100 %)
    note = join_notes(*(n for n in res.note.split("; ") if not n.startswith("zero variance")))
    cc = 0.5 * (1.0 / nc + 1.0 / nt) if continuity else 0.0
    stat = _corrected(delta, cc, alternative) / se_test
    p = float(p_value(stat, df, alternative))
    if res.se > 0 and continuity:
        q = float(critical_value(alpha, df, alternative))
        half = interval(delta, res.se, q, alternative)
        res = res.with_(abs_ci=(half[0] - cc, half[1] + cc))
    return res.with_(statistic=stat, p_value=p, note=note)
