"""Benchmark + convention check for :mod:`abtest.stats` (pure statistics, no I/O besides the report).

Measures: (1) calls per second of each test on sufficient statistics; (2) false-positive rate of
each variant (every convention option) over many simulated A/A experiments and power under a
planted lift, the SRM methods' false-alarm rate, and the sequential boundary's A/A error under 40 and
2,000 looks with ρ fixed vs re-tuned at each look, percentile capping (pooled-quantile cap, Welch) on
heavy-tailed users, and the Bayesian engine's decision rule (chance to beat control > 0.975 or < 0.025;
one-sided > 0.95); (3) how the
conventions of peer libraries change p-values and relative intervals on one fixed data set.
Writes ``bench/results/abstats.json`` and ``bench/results/abstats.md``.

    .venv/bin/python -m bench.abstats --experiments 4000   (as a module: bench/abtest.py shadows abtest)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
from scipy import stats as sps
from tqdm import tqdm

from abtest.stats import (
    CovariateMeanStats,
    CovariateRatioStats,
    MeanStats,
    ProportionStats,
    RatioStats,
    cuped_ttest,
    proportion_test,
    ratio_ttest,
    sequential_test,
    srm_check,
    welch_ttest,
)
from abtest.stats.bayesian import bayes_rejects, bayesian_test
from abtest.stats.capping import cap_value
from abtest.stats.sequential import DEFAULT_N_TUNE, always_valid_halfwidth, mixture_rho
from abtest.stats.srm import SRM_METHODS

VARIANTS = (
    "welch", "student", "z", "delta_ratio", "delta_ratio_student", "proportion", "proportion_pooled",
    "proportion_cc", "proportion_welch", "fisher", "cuped_mean", "cuped_ratio", "cuped_mean_student",
    "rel_log_ci", "rel_delta_ci", "rel_fieller_ci", "cuped_unadjusted_rel_delta_ci",
    "heavy_uncapped", "capped_0.999", "capped_0.99", "capped_ratio_0.999",
    "bayes_two_sided", "bayes_one_sided", "bayes_ratio_two_sided", "bayes_proportion_two_sided",
)  # fmt: skip
CAP_VARIANTS = ("heavy_uncapped", "capped_0.999", "capped_0.99", "capped_ratio_0.999")
BAYES_VARIANTS = ("bayes_two_sided", "bayes_one_sided", "bayes_ratio_two_sided", "bayes_proportion_two_sided")


def simulate(
    rng: np.random.Generator, experiments: int, users: int, lift: float = 0.0,
    tail_rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Per-user arrays ``(experiments, 2, users)``: impressions, long clicks and their pre-period values.

    With ``tail_rng`` also ``heavy_imps``/``heavy_clicks``: 0.5% of users (bots, power users) get their
    counts multiplied by ``1 + 20·Pareto(1.5)`` (infinite-variance tail), drawn from ``tail_rng`` so the
    other arrays do not change.
    """
    shape = (experiments, 2, users)
    activity = rng.gamma(1.2, 8.0, size=shape)
    mult = np.ones((1, 2, 1))
    mult[0, 1, 0] += lift
    imps = rng.poisson(activity * mult).astype(float)
    pre_imps = rng.poisson(activity).astype(float)
    rate = rng.beta(2.0, 6.0, size=shape)
    clicks = rng.binomial(imps.astype(np.int64), np.clip(rate * mult, 0, 1)).astype(float)
    pre_clicks = rng.binomial(pre_imps.astype(np.int64), rate).astype(float)
    out = {"imps": imps, "clicks": clicks, "pre_imps": pre_imps, "pre_clicks": pre_clicks}
    if tail_rng is not None:
        heavy = np.where(tail_rng.random(shape) < 0.005, 1.0 + 20.0 * tail_rng.pareto(1.5, size=shape), 1.0)
        out["heavy_imps"], out["heavy_clicks"] = np.round(imps * heavy), np.round(clicks * heavy)
    return out


def _capped(x: np.ndarray, q: float | None) -> np.ndarray:
    """``x (experiments, 2, users)`` capped per experiment at the ``q`` quantile pooled over both arms."""
    if q is None:
        return x
    caps = np.array([cap_value(e.ravel(), q) for e in x])
    return np.minimum(x, caps[:, None, None])


def _mean_stats(x: np.ndarray) -> np.ndarray:
    """``(experiments, 2)`` of :class:`MeanStats` from ``x (experiments, 2, users)``."""
    n = x.shape[2]
    m, v = x.mean(axis=2), x.var(axis=2, ddof=1)
    return np.array([[MeanStats(n, m[e, a], v[e, a]) for a in (0, 1)] for e in range(x.shape[0])], dtype=object)


def _ratio_stats(num: np.ndarray, den: np.ndarray) -> list[tuple]:
    return [tuple(RatioStats.from_arrays(num[e, a], den[e, a]) for a in (0, 1)) for e in range(num.shape[0])]


def arm_stats(sim: dict[str, np.ndarray]) -> list[dict[str, tuple]]:
    """Sufficient statistics per experiment: ``{variant: (control, treatment)}``."""
    x = np.stack([sim["clicks"], sim["imps"], sim["pre_clicks"], sim["pre_imps"]], axis=-1)
    n = x.shape[2]
    mean = x.mean(axis=2)
    d = x - mean[:, :, None, :]
    cov = np.einsum("eani,eanj->eaij", d, d) / (n - 1)
    any_click = (sim["clicks"] > 0).sum(axis=2)
    heavy = {}
    if "heavy_imps" in sim:
        for key, q in (("heavy_uncapped", None), ("capped_0.999", 0.999), ("capped_0.99", 0.99)):
            heavy[key] = _mean_stats(_capped(sim["heavy_imps"], q))
        heavy["capped_ratio_0.999"] = _ratio_stats(_capped(sim["heavy_clicks"], 0.999),
                                                   _capped(sim["heavy_imps"], 0.999))
    out = []
    for e in range(x.shape[0]):
        m, c = mean[e], cov[e]
        out.append(
            {
                "welch": tuple(MeanStats(n, m[a, 1], c[a, 1, 1]) for a in (0, 1)),
                "delta_ratio": tuple(
                    RatioStats(n, m[a, 0], m[a, 1], c[a, 0, 0], c[a, 1, 1], c[a, 0, 1]) for a in (0, 1)
                ),
                "proportion": tuple(ProportionStats(n, int(any_click[e, a])) for a in (0, 1)),
                "cuped_mean": tuple(
                    CovariateMeanStats(n, m[a, 1], m[a, 3], c[a, 1, 1], c[a, 3, 3], c[a, 1, 3])
                    for a in (0, 1)
                ),
                "cuped_ratio": tuple(CovariateRatioStats.from_moments(n, m[a], c[a]) for a in (0, 1)),
                **{k: tuple(v[e]) for k, v in heavy.items()},
            }
        )
    return out


def _bayes_two_sided(r) -> bool:
    return bayes_rejects(r.chance_to_win, 0.975)


def _bayes_one_sided(r) -> bool:
    return bayes_rejects(r.chance_to_win, 0.95, two_sided=False)


def _rel_excludes_zero(r) -> bool:
    return bool(r.rel_ci[0] > 0 or r.rel_ci[1] < 0)


# variant -> (statistics key, test, what counts as a rejection); a relative-CI variant rejects when
# its relative interval excludes 0 (the p-value always tests the absolute difference)
TESTS = {
    "welch": ("welch", welch_ttest, None),
    "student": ("welch", partial(welch_ttest, test="student"), None),
    "z": ("welch", partial(welch_ttest, test="z"), None),
    "delta_ratio": ("delta_ratio", ratio_ttest, None),
    "delta_ratio_student": ("delta_ratio", partial(ratio_ttest, test="student"), None),
    "proportion": ("proportion", proportion_test, None),
    "proportion_pooled": ("proportion", partial(proportion_test, variance="pooled"), None),
    "proportion_cc": ("proportion", partial(proportion_test, continuity=True), None),
    "proportion_welch": ("proportion", partial(proportion_test, test="welch"), None),
    "fisher": ("proportion", partial(proportion_test, test="fisher"), None),
    "cuped_mean": ("cuped_mean", cuped_ttest, None),
    "cuped_ratio": ("cuped_ratio", cuped_ttest, None),
    "cuped_mean_student": ("cuped_mean", partial(cuped_ttest, test="student"), None),
    "rel_log_ci": ("welch", welch_ttest, _rel_excludes_zero),
    "rel_delta_ci": ("welch", partial(welch_ttest, relative="delta"), _rel_excludes_zero),
    "rel_fieller_ci": ("welch", partial(welch_ttest, relative="fieller"), _rel_excludes_zero),
    "cuped_unadjusted_rel_delta_ci": (
        "cuped_mean", partial(cuped_ttest, relative="delta", baseline="unadjusted"), _rel_excludes_zero
    ),
    "heavy_uncapped": ("heavy_uncapped", welch_ttest, None),
    "capped_0.999": ("capped_0.999", welch_ttest, None),
    "capped_0.99": ("capped_0.99", welch_ttest, None),
    "capped_ratio_0.999": ("capped_ratio_0.999", ratio_ttest, None),
    # Bayesian engine, flat prior, relative effect: "call it" when P(beat control) > 0.975 or < 0.025
    "bayes_two_sided": ("welch", bayesian_test, _bayes_two_sided),
    "bayes_one_sided": ("welch", bayesian_test, _bayes_one_sided),
    "bayes_ratio_two_sided": ("delta_ratio", bayesian_test, _bayes_two_sided),
    "bayes_proportion_two_sided": ("proportion", bayesian_test, _bayes_two_sided),
}


def _run(variant: str, st: dict[str, tuple]):
    key, test, _ = TESTS[variant]
    return test(*st[key])


def calibration(experiments: int, users: int, lift: float, seed: int, chunk: int = 500) -> dict[str, float]:
    """Rejection rate at alpha=0.05 per variant (lift=0: false-positive rate)."""
    rng, tail_rng = np.random.default_rng(seed), np.random.default_rng(seed + 101)
    hits = dict.fromkeys(VARIANTS, 0)
    for start in tqdm(range(0, experiments, chunk), desc=f"simulate lift={lift}", unit="chunk"):
        for st in arm_stats(simulate(rng, min(chunk, experiments - start), users, lift, tail_rng)):
            for v in VARIANTS:
                r = _run(v, st)
                reject = TESTS[v][2]
                hits[v] += reject(r) if reject else r.p_value < 0.05
    return {v: hits[v] / experiments for v in VARIANTS}


def srm_calibration(experiments: int, users: int, seed: int) -> dict[str, float]:
    """Share of healthy 50/50 splits flagged at 0.05 by each SRM method (should be ≈ 0.05)."""
    counts = np.random.default_rng(seed).binomial(2 * users, 0.5, size=experiments)
    w = {"control": 1.0, "treatment": 1.0}
    return {
        m: float(np.mean([srm_check({"control": int(k), "treatment": int(2 * users - k)}, w, method=m).p_value
                          < 0.05 for k in counts]))
        for m in SRM_METHODS
    }


def sequential_peeking(reps: int, looks: int, step: int, seed: int) -> dict[str, float]:
    """A/A streams peeked ``looks`` times (``step`` users per arm between looks): share ever significant.

    ``fixed``: ρ from :data:`DEFAULT_N_TUNE` kept for every look; ``retuned``: ρ re-tuned to the
    current sample size at each look (the pre-fix behaviour); ``naive``: the fixed-horizon z test.
    """
    rng = np.random.default_rng(seed)
    n = np.arange(1, looks + 1) * step
    hits = {"fixed": 0, "retuned": 0, "naive": 0}
    rho_fixed = mixture_rho(0.05, DEFAULT_N_TUNE)
    rho_re = np.array([mixture_rho(0.05, 2 * k) for k in n])
    for start in range(0, reps, 200):
        x = rng.normal(0, 1, size=(min(200, reps - start), 2, looks * step)).astype(np.float32)
        cs = np.cumsum(x, axis=2, dtype=np.float64)[:, :, n - 1]
        cs2 = np.cumsum(x.astype(np.float64) ** 2, axis=2)[:, :, n - 1]
        var = (cs2 - cs**2 / n) / (n - 1)
        delta = np.abs(cs[:, 1] / n - cs[:, 0] / n)
        se = np.sqrt(var[:, 0] / n + var[:, 1] / n)
        for k, hw in (("fixed", always_valid_halfwidth(se, 2 * n, 0.05, rho_fixed)),
                      ("retuned", always_valid_halfwidth(se, 2 * n, 0.05, rho_re)), ("naive", 1.959964 * se)):
            hits[k] += int(np.any(delta > hw, axis=1).sum())
    return {k: v / reps for k, v in hits.items()}


def throughput(repeat: int = 3000) -> dict[str, float]:
    """Calls per second of each test on prepared sufficient statistics."""
    st = arm_stats(simulate(np.random.default_rng(0), 1, 500, tail_rng=np.random.default_rng(1)))[0]
    extra = {
        "sequential": (lambda: sequential_test(*st["welch"], n_tune=1000)),
        "srm": (lambda: srm_check({"a": 5030, "b": 4970}, {"a": 1, "b": 1})),
    }
    out = {}
    for v in VARIANTS:
        t0 = time.perf_counter()
        for _ in range(repeat):
            _run(v, st)
        out[v] = repeat / (time.perf_counter() - t0)
    for k, f in extra.items():
        t0 = time.perf_counter()
        for _ in range(repeat):
            f()
        out[k] = repeat / (time.perf_counter() - t0)
    return out


def conventions() -> list[dict[str, object]]:
    """One proportion data set (300/2000 vs 360/2100) under several peers' conventions."""
    c, t = ProportionStats(2000, 300), ProportionStats(2100, 360)
    ours = proportion_test(c, t)
    pooled = proportion_test(c, t, pooled=True)
    xc = np.r_[np.ones(300), np.zeros(1700)]
    xt = np.r_[np.ones(360), np.zeros(1740)]
    welch01 = sps.ttest_ind(xt, xc, equal_var=False)  # per-user 0/1 column, ddof=1, Welch t
    pc, pt = c.p, t.p
    rel = pt / pc - 1
    q = sps.norm.ppf(0.975)
    # symmetric delta-method interval on the relative scale (variance of T/C by the delta method)
    v_rel = (pt * (1 - pt) / t.n) / pc**2 + (pc * (1 - pc) / c.n) * pt**2 / pc**4
    sym = (rel - q * math.sqrt(v_rel), rel + q * math.sqrt(v_rel))
    # absolute interval divided by the control estimate (control treated as known)
    div = (ours.abs_ci[0] / pc, ours.abs_ci[1] / pc)
    fieller = proportion_test(c, t, relative="fieller")
    p_pool = (c.successes + t.successes) / (c.n + t.n)
    se_pool = math.sqrt(p_pool * (1 - p_pool) * (1 / c.n + 1 / t.n))
    cc = 0.5 * (1 / c.n + 1 / t.n)
    p_cc = float(2 * sps.norm.sf(max(abs(pt - pc) - cc, 0.0) / se_pool))
    return [
        {
            "convention": "this project: unpooled z, log-scale relative CI",
            "p": ours.p_value,
            "rel_ci": ours.rel_ci,
        },
        {
            "convention": "pooled-variance z (= chi-square, statsmodels proportions_ztest)",
            "p": pooled.p_value,
            "rel_ci": ours.rel_ci,
        },
        {"convention": "pooled z with continuity correction", "p": p_cc, "rel_ci": None},
        {"convention": "Welch t on per-user 0/1 values (ddof=1)", "p": float(welch01.pvalue), "rel_ci": None},
        {"convention": "symmetric delta-method CI on the relative scale", "p": None, "rel_ci": sym},
        {"convention": "absolute CI / control mean", "p": None, "rel_ci": div},
        {"convention": "Fieller (this project, option)", "p": None, "rel_ci": fieller.rel_ci},
    ]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=4000, help="simulated A/A experiments (default 4000)")
    ap.add_argument("--users", type=int, default=600, help="users per arm (default 600)")
    ap.add_argument(
        "--lift", type=float, default=0.1, help="planted lift on impressions and clicks for power"
    )
    ap.add_argument("--seed", type=int, default=20261121)
    ap.add_argument("--peeking-reps", type=int, default=4000, help="A/A streams for the sequential figures")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    report = {
        "experiments": args.experiments,
        "users_per_arm": args.users,
        "calls_per_second": throughput(),
        "aa_false_positive_rate": calibration(args.experiments, args.users, 0.0, args.seed),
        "power": calibration(args.experiments // 4, args.users, args.lift, args.seed + 1),
        "lift": args.lift,
        "srm_false_alarm_rate": srm_calibration(args.experiments, args.users, args.seed + 2),
        "sequential_aa_40_looks": sequential_peeking(args.peeking_reps, 40, 60, args.seed + 3),
        "sequential_aa_2000_looks": sequential_peeking(args.peeking_reps // 2, 2000, 10, args.seed + 4),
        "conventions": conventions(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "abstats.json").write_text(json.dumps(report, indent=1))
    lines = [
        f"# abtest.stats benchmark ({args.experiments} A/A experiments, {args.users} users/arm)",
        "",
        "| variant | calls/s | A/A FPR @0.05 | power @ lift " + f"{args.lift:.0%} |",
        "|---|---:|---:|---:|",
    ]
    for v in VARIANTS:
        lines.append(
            f"| {v} | {report['calls_per_second'][v]:,.0f} | {report['aa_false_positive_rate'][v]:.3f} "
            f"| {report['power'][v]:.3f} |"
        )
    lines += ["", "Capping rows: impressions per user with 0.5% heavy users (counts × (1 + 20·Pareto(1.5))), capped "
              "at the pooled 0.999 / 0.99 quantile of both arms, Welch (ratio: numerator and denominator capped, "
              "delta-method Welch); heavy_uncapped is the same data without a cap. Target A/A rate for capping: "
              "[0.03, 0.07]. Bayes rows: GrowthBook's Gaussian effect model, flat prior, relative effect, on the "
              "welch / delta_ratio / proportion statistics; a rejection is P(beat control) > 0.975 or < 0.025 "
              "(two-sided) or > 0.95 (one-sided, nominal A/A rate 0.05).",
              "", "SRM on healthy 50/50 splits, share flagged at 0.05 (should be ≈ 0.05):", "",
              "| SRM method | rate |", "|---|---:|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in report["srm_false_alarm_rate"].items()]
    lines += ["", f"Sequential A/A, share ever significant (ρ fixed at n_tune={DEFAULT_N_TUNE:g} vs re-tuned "
              "at each look vs fixed-horizon z):", "", "| looks | fixed ρ | re-tuned ρ | naive z |", "|---|---:|---:|---:|"]
    for k, looks in (("sequential_aa_40_looks", "40 (60 users/arm each)"), ("sequential_aa_2000_looks", "2000 (10 users/arm each)")):
        r = report[k]
        lines.append(f"| {looks} | {r['fixed']:.3f} | {r['retuned']:.3f} | {r['naive']:.3f} |")
    lines += ["", "| other | calls/s |", "|---|---:|"]
    lines += [f"| {k} | {report['calls_per_second'][k]:,.0f} |" for k in ("sequential", "srm")]
    lines += [
        "",
        "Proportions 300/2000 vs 360/2100 under different conventions:",
        "",
        "| convention | p | relative 95% CI |",
        "|---|---:|---|",
    ]
    for row in report["conventions"]:
        p = "" if row["p"] is None else f"{row['p']:.4f}"
        ci = "" if row["rel_ci"] is None else f"[{row['rel_ci'][0]:+.2%}, {row['rel_ci'][1]:+.2%}]"
        lines.append(f"| {row['convention']} | {p} | {ci} |")
    (args.out / "abstats.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
