"""Benchmark + convention check for :mod:`abtest.stats` (pure statistics, no I/O besides the report).

Measures: (1) calls per second of each test on sufficient statistics; (2) false-positive rate of
each variant over many simulated A/A experiments and power under a planted lift; (3) how the
conventions of peer libraries change p-values and relative intervals on one fixed data set.
Writes ``bench/results/abstats.json`` and ``bench/results/abstats.md``.

    .venv/bin/python bench/abstats.py --experiments 4000
"""

from __future__ import annotations

import argparse
import json
import math
import time
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

VARIANTS = ("welch", "delta_ratio", "proportion", "cuped_mean", "cuped_ratio")


def simulate(
    rng: np.random.Generator, experiments: int, users: int, lift: float = 0.0
) -> dict[str, np.ndarray]:
    """Per-user arrays ``(experiments, 2, users)``: impressions, long clicks and their pre-period values."""
    shape = (experiments, 2, users)
    activity = rng.gamma(1.2, 8.0, size=shape)
    mult = np.ones((1, 2, 1))
    mult[0, 1, 0] += lift
    imps = rng.poisson(activity * mult).astype(float)
    pre_imps = rng.poisson(activity).astype(float)
    rate = rng.beta(2.0, 6.0, size=shape)
    clicks = rng.binomial(imps.astype(np.int64), np.clip(rate * mult, 0, 1)).astype(float)
    pre_clicks = rng.binomial(pre_imps.astype(np.int64), rate).astype(float)
    return {"imps": imps, "clicks": clicks, "pre_imps": pre_imps, "pre_clicks": pre_clicks}


def arm_stats(sim: dict[str, np.ndarray]) -> list[dict[str, tuple]]:
    """Sufficient statistics per experiment: ``{variant: (control, treatment)}``."""
    x = np.stack([sim["clicks"], sim["imps"], sim["pre_clicks"], sim["pre_imps"]], axis=-1)
    n = x.shape[2]
    mean = x.mean(axis=2)
    d = x - mean[:, :, None, :]
    cov = np.einsum("eani,eanj->eaij", d, d) / (n - 1)
    any_click = (sim["clicks"] > 0).sum(axis=2)
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
            }
        )
    return out


TESTS = {
    "welch": welch_ttest,
    "delta_ratio": ratio_ttest,
    "proportion": proportion_test,
    "cuped_mean": cuped_ttest,
    "cuped_ratio": cuped_ttest,
}


def calibration(experiments: int, users: int, lift: float, seed: int, chunk: int = 500) -> dict[str, float]:
    """Rejection rate at alpha=0.05 per variant (lift=0: false-positive rate)."""
    rng = np.random.default_rng(seed)
    hits = dict.fromkeys(VARIANTS, 0)
    for start in tqdm(range(0, experiments, chunk), desc=f"simulate lift={lift}", unit="chunk"):
        for st in arm_stats(simulate(rng, min(chunk, experiments - start), users, lift)):
            for v in VARIANTS:
                hits[v] += TESTS[v](*st[v]).p_value < 0.05
    return {v: hits[v] / experiments for v in VARIANTS}


def throughput(repeat: int = 3000) -> dict[str, float]:
    """Calls per second of each test on prepared sufficient statistics."""
    st = arm_stats(simulate(np.random.default_rng(0), 1, 500))[0]
    extra = {
        "sequential": (lambda: sequential_test(*st["welch"], n_tune=1000)),
        "srm": (lambda: srm_check({"a": 5030, "b": 4970}, {"a": 1, "b": 1})),
    }
    out = {}
    for v in VARIANTS:
        t0 = time.perf_counter()
        for _ in range(repeat):
            TESTS[v](*st[v])
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
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    report = {
        "experiments": args.experiments,
        "users_per_arm": args.users,
        "calls_per_second": throughput(),
        "aa_false_positive_rate": calibration(args.experiments, args.users, 0.0, args.seed),
        "power": calibration(args.experiments // 4, args.users, args.lift, args.seed + 1),
        "lift": args.lift,
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
