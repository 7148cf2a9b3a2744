"""Coverage and width of the four relevance-delta estimators over many simulated experiments.

Each experiment (arrays only, no logs): ``Q`` queries with 16 candidate results each — 12 in the
legacy judgment pool and 4 *novel* ones nobody judged before, which only the treatment's better
retriever surfaces. The control shows its top 10 of the 12 known results, the treatment its top 10
of all 16 (less ranking noise). True grades 0–3 for every result; the true per-query nDCG@10 uses
the union of both arms' shown results as the ideal pool. A random 5 % of queries is judged (all
shown results of both arms, true grades); a biased model (:func:`abtest.simulate.labels.model_grades`:
shrinkage toward the middle, novel results underrated, Gaussian noise) labels every shown result.

Estimators of the nDCG@10 delta treatment − control, each with a 95 % interval:
``ppi`` (PPI++ on the paired differences), ``judged_only`` (paired t on the judged sample),
``model_only`` (paired t on model labels, all queries), ``unjudged_zero`` (legacy pool grades,
unjudged = 0, all queries). The target is the super-population mean delta (a 400k-query draw).
Writes ``bench/results/ppi_coverage.{json,md}``.

    .venv/bin/python bench/ppi_coverage.py --experiments 500 --queries 2000 --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
# bench/abtest.py would shadow the abtest package when run as a script from this folder
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from abtest.relevance import paired_test  # noqa: E402
from abtest.simulate.labels import model_grades  # noqa: E402
from abtest.stats.ppi import ppi_lambda, ppi_paired_delta, split_labelled  # noqa: E402

ESTIMATORS = ("ppi", "judged_only", "model_only", "unjudged_zero")
M_KNOWN, M_NOVEL, K = 12, 4, 10
DISCOUNT = 1.0 / np.log2(np.arange(2, K + 2))


def ndcg(grades: np.ndarray, shown: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """nDCG@K per query: ``grades (Q, M)``, ``shown (Q, K)`` item indices in rank order, ``pool (Q, M)`` bool
    (items whose grade defines the ideal). Gain ``2^g − 1`` (lowest grade 0); undefined → ``nan``."""
    gain = 2.0 ** grades - 1.0
    dcg = (np.take_along_axis(gain, shown, axis=1) * DISCOUNT).sum(axis=1)
    ideal = -np.sort(-np.where(pool, gain, 0.0), axis=1)[:, :K]
    idcg = (ideal * DISCOUNT[: ideal.shape[1]]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, dcg / np.where(idcg > 0, idcg, 1.0), np.nan)


def simulate(rng: np.random.Generator, q: int, noise: float, bias: float) -> dict[str, np.ndarray]:
    """Per-query nDCG@10 ``(Q,)`` per arm: true, model, legacy (unjudged = 0)."""
    m = M_KNOWN + M_NOVEL
    u = rng.beta(2.0, 2.0, size=(q, 1))
    p = np.concatenate([np.repeat(u, M_KNOWN, 1), np.repeat(np.clip(u + 0.05, 0, 1), M_NOVEL, 1)], axis=1)
    true = rng.binomial(3, p).astype(np.float64)
    known = np.zeros((q, m), dtype=bool)
    known[:, :M_KNOWN] = True
    s_c = np.where(known, true + rng.normal(0, 1.0, size=(q, m)), -np.inf)
    s_t = true + rng.normal(0, 1.3, size=(q, m))
    shown_c = np.argsort(-s_c, axis=1, kind="stable")[:, :K]
    shown_t = np.argsort(-s_t, axis=1, kind="stable")[:, :K]
    in_c, in_t = np.zeros((q, m), dtype=bool), np.zeros((q, m), dtype=bool)
    np.put_along_axis(in_c, shown_c, True, axis=1)
    np.put_along_axis(in_t, shown_t, True, axis=1)
    pool = in_c | in_t
    model = model_grades(true, in_t & ~in_c, 0.0, 3.0, noise, bias, rng)
    legacy = np.where(known, true, 0.0)
    out = {}
    for arm, shown in (("c", shown_c), ("t", shown_t)):
        out[f"true_{arm}"] = np.nan_to_num(ndcg(true, shown, pool))  # undefined (nothing relevant) → 0
        out[f"model_{arm}"] = np.nan_to_num(ndcg(model, shown, pool))
        out[f"legacy_{arm}"] = ndcg(legacy, shown, known)  # today: nan = undefined, dropped
    return out


def true_delta(seed: int, noise: float, bias: float, n: int = 400_000) -> float:
    """Super-population mean nDCG@10 delta (Monte-Carlo SE ≈ 3e-4)."""
    rng = np.random.default_rng([seed, 99])
    tot = 0.0
    for _ in range(n // 50_000):
        s = simulate(rng, 50_000, noise, bias)
        tot += float((s["true_t"] - s["true_c"]).sum())
    return tot / (n // 50_000 * 50_000)


def one_experiment(rng: np.random.Generator, q: int, judged_share: float, noise: float, bias: float) -> dict:
    s = simulate(rng, q, noise, bias)
    judged = np.zeros(q, dtype=bool)
    judged[rng.choice(q, size=max(2, round(judged_share * q)), replace=False)] = True
    hc, ht = np.where(judged, s["true_c"], np.nan), np.where(judged, s["true_t"], np.nan)
    res = {
        "ppi": ppi_paired_delta(s["model_c"], s["model_t"], hc, ht),
        "judged_only": paired_test(s["true_c"][judged], s["true_t"][judged]),
        "model_only": paired_test(s["model_c"], s["model_t"]),
        "unjudged_zero": paired_test(s["legacy_c"], s["legacy_t"]),
    }
    corr = float(np.corrcoef(np.concatenate([s["true_c"], s["true_t"]]),
                             np.concatenate([s["model_c"], s["model_t"]]))[0, 1])
    corr_d = float(np.corrcoef(s["true_t"] - s["true_c"], s["model_t"] - s["model_c"])[0, 1])
    return {"ci": {e: r.abs_ci for e, r in res.items()}, "est": {e: r.abs_delta for e, r in res.items()},
            "lam": ppi_lambda(*split_labelled(s["model_t"] - s["model_c"], ht - hc)), "corr": corr, "corr_delta": corr_d,
            "finite_delta": float((s["true_t"] - s["true_c"]).mean())}


def run(experiments: int, queries: int, seed: int, judged_share: float = 0.05, noise: float = 0.3,
        bias: float = 0.2, progress: bool = True) -> dict:
    """Simulate ``experiments`` experiments and summarise coverage / width / bias per estimator."""
    t0 = time.perf_counter()
    target = true_delta(seed, noise, bias)
    rng = np.random.default_rng(seed)
    rows = [one_experiment(rng, queries, judged_share, noise, bias)
            for _ in tqdm(range(experiments), desc="experiments", unit="exp", disable=not progress)]
    summary: dict = {}
    for e in ESTIMATORS:
        lo = np.array([r["ci"][e][0] for r in rows])
        hi = np.array([r["ci"][e][1] for r in rows])
        est = np.array([r["est"][e] for r in rows])
        summary[e] = {"coverage": float(np.mean((lo <= target) & (target <= hi))), "mean_width": float(np.mean(hi - lo)),
                      "mean_estimate": float(est.mean()), "bias": float(est.mean() - target),
                      "sd_estimate": float(est.std(ddof=1)) if len(est) > 1 else math.nan}
    summary["ppi"]["width_ratio_vs_judged_only"] = summary["ppi"]["mean_width"] / summary["judged_only"]["mean_width"]
    cover_se = math.sqrt(0.95 * 0.05 / max(experiments, 1))
    return {
        "config": {"experiments": experiments, "queries": queries, "seed": seed, "judged_share": judged_share,
                   "judged_queries": max(2, round(judged_share * queries)), "model_noise": noise, "model_bias": bias,
                   "k": K, "known_items": M_KNOWN, "novel_items": M_NOVEL, "alpha": 0.05},
        "true_delta": target,
        "model_true_corr_ndcg": float(np.mean([r["corr"] for r in rows])),
        "model_true_corr_delta": float(np.mean([r["corr_delta"] for r in rows])),
        "mean_lambda": float(np.mean([r["lam"] for r in rows])),
        "coverage_mc_se": cover_se,
        "estimators": summary,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def markdown(report: dict) -> str:
    """The report as a Markdown page."""
    c = report["config"]
    lines = [
        "# PPI coverage of the nDCG@10 delta", "",
        f"{c['experiments']} simulated experiments × {c['queries']} queries, {c['judged_share']:.0%} judged "
        f"({c['judged_queries']} queries, all shown results of both arms); model noise {c['model_noise']}, bias "
        f"{c['model_bias']}; true delta {report['true_delta']:+.4f}. Realised correlation of the model's per-query "
        f"nDCG@10 with the true one: **{report['model_true_corr_ndcg']:.3f}** (of the per-query delta: "
        f"{report['model_true_corr_delta']:.3f}); mean PPI++ λ {report['mean_lambda']:.3f}. Coverage Monte-Carlo SE "
        f"≈ {report['coverage_mc_se']:.3f}. {report['seconds']:.1f} s.", "",
        "| estimator | coverage of the true delta (95 % CI) | mean width | bias of the estimate |",
        "|---|---:|---:|---:|",
    ]
    for e in ESTIMATORS:
        s = report["estimators"][e]
        lines.append(f"| {e} | {s['coverage']:.3f} | {s['mean_width']:.4f} | {s['bias']:+.4f} |")
    lines += ["", f"PPI width / judged-only width: **{report['estimators']['ppi']['width_ratio_vs_judged_only']:.3f}**.",
              "", "Reproduce: `.venv/bin/python bench/ppi_coverage.py --experiments "
              f"{c['experiments']} --queries {c['queries']} --seed {c['seed']}`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiments", type=int, default=500)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--judged-share", type=float, default=0.05)
    ap.add_argument("--model-noise", type=float, default=0.3)
    ap.add_argument("--model-bias", type=float, default=0.2)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--name", default="ppi_coverage", help="file stem of the outputs")
    args = ap.parse_args(argv)
    report = run(args.experiments, args.queries, args.seed, args.judged_share, args.model_noise, args.model_bias)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    (args.out / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
