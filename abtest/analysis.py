"""Orchestration: per-user table → SQL sufficient statistics → :mod:`abtest.stats` tests → tidy rows.

One row per (metric × treatment arm × segment). Conventions (see ``docs/abtest.md``):

* decision metrics: two-sided Welch (means), delta-method Welch (ratios) or unpooled z
  (proportions); with CUPED (pre-period covariates present and ``cuped=True``) the CUPED-adjusted
  Welch test instead; Holm over the decision metrics of each treatment arm (segment ``all``).
  Every convention is an :class:`AnalysisConfig` option (``test``, ``proportion_test``,
  ``variance``, ``continuity``, ``relative``, ``cuped_baseline``, ``srm_method``, ``n_tune``) and is
  recorded in :attr:`AnalysisResult.extra` ``["conventions"]`` (→ ``summary.json``);
* guardrails: one-sided non-inferiority with the catalogue's relative margin (CUPED-adjusted when
  possible); ``guardrail_passed`` says whether the lower (upper) bound clears the margin;
* segment slices (``head``/``torso``/``tail``): same tests, Benjamini–Hochberg over all slice rows
  of a treatment arm (exploratory);
* SRM: chi-square of users per arm vs the configured weights (equal by default); a failed check
  raises :class:`SRMFailed` unless ``allow_srm`` — then every row carries ``blocked = True``;
* capping (off by default): ``caps`` per metric / ``cap_quantile`` for every mean and ratio metric
  (:mod:`abtest.stats.capping`, caps in SQL by :func:`abtest.moments.column_caps`), recorded per row
  (``cap_quantile``, ``cap_values``, ``share_capped``) and in ``extra["capping"]``;
* ``engine``: ``frequentist`` (default) | ``bayesian`` | ``both`` — the Bayesian columns
  (:mod:`abtest.stats.bayesian`: ``chance_to_win``, ``bayes_ci_*``, ``risk_*``) beside the
  frequentist ones (which SRM, Holm and the guardrails keep using);
* adjusted intervals: every row of a correction family carries its interval at the adjusted level
  (``ci_adjustment`` ``holm-step`` / ``fcr-by``, ``alpha_adjusted``, ``*_ci_adj_*``), and decision
  metrics also the simultaneous Bonferroni intervals (``*_ci_bonf_*``), see :mod:`abtest.stats.multiple`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from abtest.logs import LogValidationError
from abtest.metrics import Metric, check_caps, required_columns, resolve_metrics
from abtest.moments import Moments, arm_stats, column_caps, group_moments, metric_variables, variable_column
from abtest.stats.bayesian import EFFECTS, ENGINES, GaussianPrior, bayesian_test
from abtest.stats.capping import check_quantile
from abtest.stats.cuped import CUPED_BASELINES, cuped_adjust_means, cuped_adjust_ratios, unadjusted_relative
from abtest.stats.delta import ratio_ttest
from abtest.stats.errors import StatsInputError
from abtest.stats.guardrail import non_inferiority
from abtest.stats.multiple import DECISION_CORRECTION, SEGMENT_CORRECTION, adjusted_intervals, correct_results
from abtest.stats.proportion import PROPORTION_TESTS, VARIANCES, proportion_test
from abtest.stats.relative import RELATIVE_METHODS
from abtest.stats.result import TestResult, join_notes
from abtest.stats.sequential import DEFAULT_N_TUNE, SEQUENTIAL_RELATIVE, sequential_test
from abtest.stats.srm import SRM_METHODS, SRM_THRESHOLD, SRMResult, srm_check
from abtest.stats.sufficient import CovariateRatioStats
from abtest.stats.ttest import MEAN_TESTS, METHOD_SUFFIX, welch_ttest
from abtest.user_table import UserTableInfo, validate_user_table


class SRMFailed(ValueError):
    """The sample-ratio-mismatch check failed: the experiment's results must not be trusted."""

    def __init__(self, srm: SRMResult, source: str):
        self.srm = srm
        obs = ", ".join(f"{a}={n}" for a, n in srm.observed.items())
        exp = ", ".join(f"{a}={e:.0f}" for a, e in srm.expected.items())
        super().__init__(
            f"sample ratio mismatch in {source}: users per arm {obs}, expected {exp} "
            f"(chi-square p={srm.p_value:.3g} < {srm.threshold}); results are blocked — fix assignment/"
            "logging, or pass --allow-srm to write them flagged as blocked"
        )


@dataclass
class AnalysisConfig:
    """What to test and how. ``weights``: configured traffic split per arm (equal when ``None``).

    Conventions (defaults in brackets): ``test`` for mean and ratio metrics [``welch``] | ``student``
    | ``z``; ``proportion_test`` [``z``] | ``welch`` | ``student`` | ``fisher``; ``variance`` of
    proportions [``unpooled``] | ``pooled``; ``continuity`` correction of proportions [off];
    ``relative`` interval [``log``] | ``delta`` | ``fieller``; ``cuped_baseline`` of the CUPED lift
    [``adjusted``] | ``unadjusted``; ``srm_method`` [``chi2``] | ``chi2-yates`` | ``binomial``;
    ``n_tune``: planned total users of the sequential boundary, fixed for the whole experiment
    [:data:`abtest.stats.sequential.DEFAULT_N_TUNE`]. Capping [off]: ``caps`` ``{metric: quantile}``
    and/or ``cap_quantile`` for every other mean/ratio metric, ``cap_ignore_zeros``. Bayesian:
    ``engine`` [``frequentist``] | ``bayesian`` | ``both``, ``bayes_effect`` [``relative``] |
    ``absolute``, prior on the relative effect ``prior_mean`` [0], ``prior_stddev`` [0.3],
    ``prior_proper`` [off: flat] (GrowthBook's defaults).
    """

    control: str
    metrics: tuple[str, ...] | None = None
    alpha: float = 0.05
    cuped: bool = True
    segments: bool = True
    sequential: bool = False
    n_tune: float = DEFAULT_N_TUNE
    weights: dict[str, float] | None = None
    srm_threshold: float = SRM_THRESHOLD
    allow_srm: bool = False
    relative: str = "log"
    test: str = "welch"
    proportion_test: str = "z"
    variance: str = "unpooled"
    continuity: bool = False
    cuped_baseline: str = "adjusted"
    srm_method: str = "chi2"
    memory_limit: str = "1GB"
    threads: int = 2
    caps: dict[str, float] | None = None
    cap_quantile: float | None = None
    cap_ignore_zeros: bool = False
    engine: str = "frequentist"
    bayes_effect: str = "relative"
    prior_mean: float = 0.0
    prior_stddev: float = 0.3
    prior_proper: bool = False

    def __post_init__(self) -> None:
        choices = {"test": MEAN_TESTS, "proportion_test": PROPORTION_TESTS, "variance": VARIANCES,
                   "relative": RELATIVE_METHODS, "cuped_baseline": CUPED_BASELINES, "srm_method": SRM_METHODS,
                   "engine": ENGINES, "bayes_effect": EFFECTS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise StatsInputError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.n_tune is None or not (math.isfinite(self.n_tune) and self.n_tune > 0):
            raise StatsInputError(f"n_tune (planned total users) must be finite and > 0, got {self.n_tune}")
        for name, q in {**(self.caps or {}), **({"--cap-quantile": self.cap_quantile} if self.cap_quantile
                                                else {})}.items():
            check_quantile(q, name)
        self.prior()  # validates the prior

    def prior(self) -> GaussianPrior:
        """The Bayesian engine's prior on the relative effect."""
        return GaussianPrior(self.prior_mean, self.prior_stddev, self.prior_proper)

    def cap_for(self, metric: Metric) -> float | None:
        """The capping quantile of ``metric`` (``None``: not capped; proportions never are)."""
        if metric.kind == "proportion":
            return None
        return (self.caps or {}).get(metric.name, self.cap_quantile)

    @property
    def bayesian(self) -> bool:
        return self.engine != "frequentist"

    def conventions(self) -> dict:
        """The conventions used, as recorded in the results (``summary.json`` ``conventions``)."""
        return {"test": self.test, "proportion_test": self.proportion_test, "variance": self.variance,
                "continuity": self.continuity, "relative": self.relative, "cuped": self.cuped,
                "cuped_baseline": self.cuped_baseline, "srm_method": self.srm_method,
                "srm_threshold": self.srm_threshold, "alpha": self.alpha, "sequential": self.sequential,
                "n_tune": float(self.n_tune) if self.sequential else None,
                "decision_correction": DECISION_CORRECTION, "segment_correction": SEGMENT_CORRECTION,
                "adjusted_ci": {"decision": "holm-step", "decision_simultaneous": "bonferroni", "segments": "fcr-by"},
                "capping": ({"caps": self.caps, "cap_quantile": self.cap_quantile, "ignore_zeros": self.cap_ignore_zeros,
                             "population": "all users of all arms", "interpolation": "linear (quantile_cont)"}
                            if (self.caps or self.cap_quantile) else None),
                "engine": self.engine,
                "bayesian": ({"model": "gaussian-effect", "effect": self.bayes_effect, "prior_mean": self.prior_mean,
                              "prior_stddev": self.prior_stddev, "prior_proper": self.prior_proper}
                             if self.bayesian else None)}


@dataclass
class AnalysisResult:
    """The tidy results table plus what the summary needs."""

    experiment: str
    control: str
    arms: dict[str, int]
    srm: SRMResult
    results: pd.DataFrame
    metrics: list[Metric]
    info: UserTableInfo
    extra: dict = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return not self.srm.passed


def users_relation(info: UserTableInfo, columns: list[str]) -> str:
    """SQL over the per-user table with ``arm``, ``segment`` (``all`` if absent) and ``columns``."""
    seg = "segment" if info.has_segment else "'all' AS segment"
    cols = ", ".join(f'"{c}"' for c in columns)
    return f"SELECT arm, {seg}, {cols} FROM read_parquet('{info.path}')"


def _row(res: TestResult, metric: Metric, segment: str, cuped: bool, raw: tuple[float, float], **extra) -> dict:
    return {
        "metric": metric.name, "kind": metric.kind, "role": metric.role, "segment": segment,
        "control": res.control, "treatment": res.treatment,
        "control_value": res.control_value, "treatment_value": res.treatment_value,
        "control_raw": raw[0], "treatment_raw": raw[1],
        "abs_delta": res.abs_delta, "abs_ci_low": res.abs_ci[0], "abs_ci_high": res.abs_ci[1],
        "rel_delta": res.rel_delta, "rel_ci_low": res.rel_ci[0], "rel_ci_high": res.rel_ci[1],
        "p_value": res.p_value, "p_value_adjusted": res.p_value_adjusted, "correction": res.correction,
        "significant": bool(res.significant), "alternative": res.alternative, "alpha": res.alpha,
        "method": res.method, "statistic": res.statistic, "se": res.se, "df": res.df, "rel_se": res.rel_se,
        "cuped": cuped, "n_control": res.n_control, "n_treatment": res.n_treatment,
        "higher_is_better": metric.higher_is_better, "margin": metric.margin, "note": res.note, **extra,
    }  # fmt: skip


def _raw_value(stats) -> float:
    base = getattr(stats, "metric", stats)
    for attr in ("mean", "ratio", "p"):
        if hasattr(base, attr):
            return float(getattr(base, attr))
    return math.nan


def compare_metric(
    metric: Metric, mc: Moments, mt: Moments, names: tuple[str, str], cfg: AnalysisConfig, cuped: bool
) -> tuple[TestResult, dict]:
    """One metric, one treatment arm vs control, one segment → ``(TestResult, extra columns)``."""
    cap = cfg.cap_for(metric)
    sc, st = arm_stats(metric, mc, cuped, names[0], cap), arm_stats(metric, mt, cuped, names[1], cap)
    kw = {"metric": metric.name, "control_name": names[0], "treatment_name": names[1], "alpha": cfg.alpha}
    extra = _empty_extra(cfg)
    extra["raw"] = (_raw_value(sc), _raw_value(st))
    adj = None
    if cuped:
        adjust = cuped_adjust_ratios if isinstance(sc, CovariateRatioStats) else cuped_adjust_means
        adj = adjust(sc, st, metric=metric.name)
        tc, tt = adj.control, adj.treatment
        method = f"cuped-{'delta-' if metric.kind == 'ratio' else ''}{METHOD_SUFFIX[cfg.test]}"
        extra["variance_reduction"] = adj.variance_reduction
    else:
        tc, tt, method = sc, st, None
    if metric.role == "guardrail":
        g = non_inferiority(tc, tt, margin=float(metric.margin), relative=True,
                            higher_is_better=bool(metric.higher_is_better), **kw)
        res = g.test if method is None else g.test.with_(method=f"non-inferiority-{method}")
        extra["guardrail_passed"] = g.passed
    elif cuped:
        res = welch_ttest(tc, tt, relative=cfg.relative, method=method, test=cfg.test, **kw)
        if cfg.cuped_baseline == "unadjusted":
            rel = unadjusted_relative(adj, sc, alpha=cfg.alpha, df=res.df, method=cfg.relative, test=cfg.test)
            res = res.with_(rel_delta=rel.rel_delta, rel_ci=rel.ci, rel_se=rel.se,
                            note=join_notes(res.note, rel.note, "lift over the unadjusted control mean"))
    elif metric.kind == "ratio":
        res = ratio_ttest(tc, tt, relative=cfg.relative, test=cfg.test, **kw)
    elif metric.kind == "proportion":
        res = proportion_test(tc, tt, relative=cfg.relative, test=cfg.proportion_test, variance=cfg.variance,
                              continuity=cfg.continuity, **kw)
    else:
        res = welch_ttest(tc, tt, relative=cfg.relative, test=cfg.test, **kw)
    if cfg.sequential:  # on the unadjusted arms, as the daily series (abtest.timeseries)
        plain = (arm_stats(metric, mc, False, names[0], cap), arm_stats(metric, mt, False, names[1], cap)) if cuped \
            else (sc, st)
        seq = sequential_test(*plain, n_tune=cfg.n_tune, alpha=cfg.alpha, metric=metric.name,
                              control_name=names[0], treatment_name=names[1],
                              relative=cfg.relative if cfg.relative in SEQUENTIAL_RELATIVE else "log",
                              baseline=cfg.cuped_baseline)
        extra.update(seq_ci_low=seq.abs_ci[0], seq_ci_high=seq.abs_ci[1], seq_p_value=seq.p_value,
                     seq_rel_ci_low=seq.rel_ci[0], seq_rel_ci_high=seq.rel_ci[1])
    if cfg.bayesian:
        b = bayesian_test(tc, tt, effect=cfg.bayes_effect, prior=cfg.prior(), alpha=cfg.alpha,
                          inverse=metric.higher_is_better is False, **{k: v for k, v in kw.items() if k != "alpha"})
        extra.update(bayes_expected=b.expected, bayes_ci_low=b.ci[0], bayes_ci_high=b.ci[1], bayes_stddev=b.stddev,
                     chance_to_win=b.chance_to_win, risk_control=b.risk_control, risk_treatment=b.risk_treatment,
                     bayes_effect=b.effect, bayes_method=b.method, bayes_note=b.note)
    return res, extra


BAYES_COLUMNS: tuple[str, ...] = ("bayes_expected", "bayes_ci_low", "bayes_ci_high", "bayes_stddev", "chance_to_win",
                                  "risk_control", "risk_treatment")


def _empty_extra(cfg: AnalysisConfig | None = None) -> dict:
    nan = math.nan
    out = {"raw": (nan, nan), "variance_reduction": nan, "guardrail_passed": None, "seq_ci_low": nan,
           "seq_ci_high": nan, "seq_p_value": nan, "seq_rel_ci_low": nan, "seq_rel_ci_high": nan}
    if cfg is not None and cfg.bayesian:
        out.update(dict.fromkeys(BAYES_COLUMNS, nan), bayes_effect=cfg.bayes_effect, bayes_method="not-tested",
                   bayes_note="")
    return out


def _adjusted_columns(res: TestResult, bonf: TestResult | None) -> dict:
    nan = math.nan
    a, r = res.abs_ci_adjusted or (nan, nan), res.rel_ci_adjusted or (nan, nan)
    ba, br = (bonf.abs_ci, bonf.rel_ci) if bonf is not None else ((nan, nan), (nan, nan))
    return {"ci_adjustment": res.ci_adjustment, "alpha_adjusted": res.alpha_adjusted,
            "abs_ci_adj_low": a[0], "abs_ci_adj_high": a[1], "rel_ci_adj_low": r[0], "rel_ci_adj_high": r[1],
            "abs_ci_bonf_low": ba[0], "abs_ci_bonf_high": ba[1], "rel_ci_bonf_low": br[0], "rel_ci_bonf_high": br[1]}


def _cap_columns(metric: Metric, cfg: AnalysisConfig, caps: dict) -> dict:
    q = cfg.cap_for(metric)
    if not (cfg.caps or cfg.cap_quantile):
        return {}
    if q is None:
        return {"cap_quantile": math.nan, "cap_values": "", "share_capped": math.nan}
    mine = [caps[v] for v in metric_variables(metric, False, q) if v in caps]
    return {"cap_quantile": q, "cap_values": ", ".join(f"{c.column} <= {c.cap:.6g}" for c in mine),
            "share_capped": max((c.share_capped for c in mine), default=math.nan)}


def _failed(metric: Metric, names: tuple[str, str], mc: Moments, mt: Moments, cfg: AnalysisConfig, why: str):
    nan = math.nan
    return TestResult(metric.name, names[0], names[1], nan, nan, nan, (nan, nan), nan, (nan, nan), nan,
                      "two-sided", cfg.alpha, "not-tested", mc.n, mt.n, nan, note=why)  # fmt: skip


def check_arms(arms: dict[str, int], cfg: AnalysisConfig, source: Path) -> list[str]:
    """The treatment arms; raises when the control is missing or an arm is empty."""
    if cfg.control not in arms:
        raise LogValidationError(source, f"control arm {cfg.control!r} not found; arms present: {sorted(arms)}",
                                 column="arm")
    for arm, w in (cfg.weights or {}).items():
        if w > 0 and arms.get(arm, 0) == 0:
            raise LogValidationError(source, f"arm {arm!r} has no users (empty arm); arms present: {sorted(arms)}",
                                     column="arm")
    treatments = [a for a in arms if a != cfg.control]
    if not treatments:
        raise LogValidationError(source, f"only the control arm {cfg.control!r} has users; nothing to compare",
                                 column="arm")
    return treatments


def analyze_user_table(users_path: str | Path, config: AnalysisConfig, experiment: str | None = None) -> AnalysisResult:
    """Run every configured metric over a per-user table (``users.parquet``) → :class:`AnalysisResult`.

    Raises :class:`SRMFailed` (unless ``allow_srm``), :class:`LogValidationError` for bad tables or
    arms, :class:`abtest.metrics.UnknownMetricError` for unknown metric names.
    """
    import duckdb

    metrics = resolve_metrics(config.metrics)
    check_caps(config.caps, metrics)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{config.memory_limit}'; SET threads = {int(config.threads)}")
    try:
        info = validate_user_table(users_path, required_columns(metrics), con)
        cuped_on = {m.name: config.cuped and all(info.has_pre(c) for c in m.columns) for m in metrics}
        var_of: dict[str, list[str]] = {}
        for m in metrics:
            for v in metric_variables(m, cuped_on[m.name], config.cap_for(m)):
                var_of.setdefault(v, []).append(m.name)
        variables = sorted(var_of)
        relation = users_relation(info, sorted({variable_column(v) for v in variables}))
        caps = column_caps(con, relation, variables, config.cap_ignore_zeros,
                           {v: ", ".join(ns) for v, ns in var_of.items()})
        moments = group_moments(con, relation, variables, caps)
    finally:
        con.close()
    arms = {a: m.n for (a, s), m in sorted(moments.items()) if s == "all"}
    treatments = check_arms(arms, config, info.path)
    arms = {config.control: arms[config.control], **{a: arms[a] for a in treatments}}
    weights = config.weights or dict.fromkeys(arms, 1.0)
    srm = srm_check({a: arms.get(a, 0) for a in weights}, weights, threshold=config.srm_threshold,
                    method=config.srm_method)
    if not srm.passed and not config.allow_srm:
        raise SRMFailed(srm, str(info.path))
    order = {"all": 0, "head": 1, "torso": 2, "tail": 3}
    segments = sorted({s for (_, s) in moments} if config.segments else {"all"}, key=lambda s: (order.get(s, 9), s))
    rows: list[dict] = []
    for arm in treatments:
        rows += _arm_rows(arm, segments, metrics, moments, arms, variables, config, cuped_on, caps, not srm.passed)
    return AnalysisResult(
        experiment=experiment or info.experiment or Path(users_path).parent.name or "experiment",
        control=config.control, arms=arms, srm=srm, results=pd.DataFrame(rows), metrics=metrics, info=info,
        extra={"conventions": config.conventions(), "capping": [c.to_dict() for c in caps.values()]},
    )


def _arm_rows(arm: str, segments: list[str], metrics: list[Metric], moments: dict, arms: dict[str, int],
              variables: list[str], config: AnalysisConfig, cuped_on: dict[str, bool], caps: dict,
              blocked: bool) -> list[dict]:
    """Every (segment × metric) row of one treatment arm, corrected per family, with adjusted CIs."""
    names = (config.control, arm)
    results: dict[tuple[str, str], tuple[TestResult, dict, Metric, tuple[Moments, Moments]]] = {}
    for seg in segments:
        for m in metrics:
            mc = moments.get((config.control, seg), Moments(arms[config.control]))
            mt = moments.get((arm, seg), Moments(arms[arm]))
            for mm in (mc, mt):  # a slice nobody used: all sums are zero
                if not mm.sums:
                    mm.sums = dict.fromkeys(variables, 0.0)
                    mm.cross = {(a, b): 0.0 for a in variables for b in variables if a <= b}
            try:
                res, extra = compare_metric(m, mc, mt, names, config, cuped_on[m.name])
            except StatsInputError as exc:
                res, extra = _failed(m, names, mc, mt, config, str(exc)), _empty_extra(config)
            results[(seg, m.name)] = (res, extra, m, (mc, mt))

    def rerun(key: tuple[str, str], level: float) -> TestResult:
        cfg = replace(config, alpha=level, sequential=False, engine="frequentist")
        m, groups = results[key][2], results[key][3]
        return compare_metric(m, *groups, names, cfg, cuped_on[m.name])[0]

    families = {
        DECISION_CORRECTION: [k for k, v in results.items() if k[0] == "all" and v[2].role == "decision"],
        SEGMENT_CORRECTION: [k for k, v in results.items() if k[0] != "all" and v[2].role != "guardrail"],
    }
    for method, keys in families.items():
        corrected = correct_results([results[k][0] for k in keys], method)
        for k, r in zip(keys, corrected, strict=True):
            r = adjusted_intervals([r], lambda _r, a, k=k: rerun(k, a))[0]
            results[k] = (r, *results[k][1:])
    tested = [k for k in families[DECISION_CORRECTION] if math.isfinite(results[k][0].p_value)]
    bonf = {k: rerun(k, config.alpha / len(tested)) for k in tested}
    rows = []
    for (seg, name), (res, extra, m, _) in results.items():
        raw = extra.pop("raw")
        rows.append(_row(res, m, seg, cuped_on[m.name] and res.method.startswith(("cuped", "non-inferiority-cuped")),
                         raw, blocked=blocked, **extra, **_adjusted_columns(res, bonf.get((seg, name))),
                         **_cap_columns(m, config, caps)))
    return rows
