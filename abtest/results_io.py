"""Write the A/B results directory ``OUT/<experiment>/`` (the contract the dashboard reads).

Files (documented in ``docs/abtest.md``): ``summary.json``, ``results.parquet`` / ``.json`` /
``.md``, ``timeseries.parquet`` (when per-day data exist), ``relevance_per_query.parquet`` and
``relevance.json`` (when served results and judgments exist), ``relevance_ppi.json`` and
``relevance_ppi_per_query.parquet`` (when served results and model labels exist). JSON floats ``nan``/``inf`` are
written as ``null`` / ``"inf"`` / ``"-inf"`` so any JSON reader can load them.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from abtest.analysis import AnalysisResult
from abtest.relevance_ppi import PPIRelevance
from abtest.relevance_report import RelevanceReport

SCHEMA_VERSION = 1


def clean_json(obj: Any) -> Any:
    """Recursively make ``obj`` strict-JSON: nan → None, ±inf → "inf"/"-inf", numpy → python."""
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [clean_json(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            obj = obj.tolist() if hasattr(obj, "tolist") else str(obj)
            return clean_json(obj)
    if isinstance(obj, float):
        if math.isnan(obj):
            return None
        if math.isinf(obj):
            return "inf" if obj > 0 else "-inf"
    if isinstance(obj, pd.Timestamp | datetime):
        return obj.isoformat()
    return obj


def _fmt(x: float | None, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float) and math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{100 * x:+.2f}%" if pct else f"{x:.4g}"


def results_markdown(res: AnalysisResult, summary: dict) -> str:
    """A readable Markdown report: SRM banner, overall table, guardrails, segment table."""
    df = res.results
    lines = [f"# A/B results — {res.experiment}", ""]
    srm = summary["srm"]
    if not srm["passed"]:
        lines += [f"> **BLOCKED: sample ratio mismatch** (p = {_fmt(srm['p_value'])}). Do not read these numbers "
                  "as effects; fix assignment/logging first.", ""]
    lines += [f"Control **{res.control}**; users per arm: "
              + ", ".join(f"{a} {n:,}" for a, n in res.arms.items())
              + f"; SRM p = {_fmt(srm['p_value'])} ({'passed' if srm['passed'] else 'FAILED'}).", ""]
    bayes = "chance_to_win" in df.columns
    head = "| metric | role | arm | control | treatment | Δ rel [CI] | Δ rel [adj. CI] | p | p adj | method |"
    if bayes:
        head += " P(beat control) | Bayes Δ rel [CrI] |"
    for title, part in (("Overall", df[df.segment == "all"]), ("Segments (BH-adjusted)", df[df.segment != "all"])):
        if part.empty:
            continue
        lines += [f"## {title}", "", head if title == "Overall" else head.replace("| role |", "| segment |"),
                  "|" + "---|" * (head.count("|") - 1)]
        for r in part.itertuples():
            flag = ""
            if r.role == "guardrail":
                flag = " ✅" if r.guardrail_passed else " ⚠️"
            elif r.significant:
                flag = " *"
            ci = f"{_fmt(r.rel_delta, True)} [{_fmt(r.rel_ci_low, True)}, {_fmt(r.rel_ci_high, True)}]"
            adj = (f"[{_fmt(r.rel_ci_adj_low, True)}, {_fmt(r.rel_ci_adj_high, True)}] ({r.ci_adjustment})"
                   if isinstance(r.ci_adjustment, str) else "–")
            second = r.role if title == "Overall" else r.segment
            line = (f"| {r.metric}{flag} | {second} | {r.treatment} | {_fmt(r.control_value)} | "
                    f"{_fmt(r.treatment_value)} | {ci} | {adj} | {_fmt(r.p_value)} | {_fmt(r.p_value_adjusted)} | "
                    f"{r.method} |")
            if bayes:
                pct = r.bayes_effect == "relative"
                line += (f" {_fmt(r.chance_to_win)} | {_fmt(r.bayes_expected, pct)} [{_fmt(r.bayes_ci_low, pct)}, "
                         f"{_fmt(r.bayes_ci_high, pct)}] |")
            lines.append(line)
        lines.append("")
    conv = summary.get("conventions") or {}
    if conv:
        lines += ["Conventions: " + ", ".join(f"{k} = {v}" for k, v in conv.items() if v is not None) + ".", ""]
    caps = res.extra.get("capping") or []
    if caps:
        lines += ["Capping: " + "; ".join(f"{c['metric']}: {c['column']} <= {_fmt(c['cap'])} (q = {c['quantile']:g}, "
                                          f"{_fmt(c['share_capped'], True).lstrip('+')} of users capped)"
                                          for c in caps) + ".", ""]
    lines += ["`*` significant after correction (Holm over decision metrics, BH over segment slices); "
              "adj. CI: Holm-step (decision) / Benjamini–Yekutieli FCR (segments) interval, excludes 0 exactly "
              "when p adj < α; guardrails: ✅ non-inferior within the margin, ⚠️ not shown non-inferior."
              + (" P(beat control): posterior chance the treatment is better (Gaussian effect model, "
                 "GrowthBook's default); CrI: credible interval." if bayes else ""), ""]
    return "\n".join(lines)


def build_summary(res: AnalysisResult, meta: dict, files: list[str]) -> dict:
    """``summary.json`` content (see docs/abtest.md for every key)."""
    df = res.results
    decision = df[(df.segment == "all") & (df.role == "decision")]
    guard = df[(df.segment == "all") & (df.role == "guardrail")]
    return {
        "schema_version": SCHEMA_VERSION,
        "experiment": res.experiment,
        "arms": list(res.arms),
        "control": res.control,
        "users_per_arm": res.arms,
        "start": meta.get("start"),
        "end": meta.get("end"),
        "running_days": meta.get("running_days"),
        "srm": {"p": res.srm.p_value, "passed": res.srm.passed, **res.srm.to_dict()},
        "blocked": res.blocked,
        "n_significant_decision_metrics": int(decision.significant.sum()),
        "decision_metrics": sorted(decision.metric.unique().tolist()),
        "guardrails": {f"{r.metric}:{r.treatment}": bool(r.guardrail_passed) for r in guard.itertuples()},
        "alpha": float(df.alpha.iloc[0]) if len(df) else None,
        "conventions": res.extra.get("conventions"),
        "capping": res.extra.get("capping") or None,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files,
        **{k: v for k, v in meta.items() if k not in ("start", "end", "running_days")},
    }


def write_results(
    res: AnalysisResult, out_root: str | Path, meta: dict | None = None, timeseries: pd.DataFrame | None = None,
    relevance: RelevanceReport | None = None, relevance_ppi: PPIRelevance | None = None,
) -> Path:
    """Write ``out_root/<experiment>/`` and return that directory."""
    out = Path(out_root) / res.experiment
    out.mkdir(parents=True, exist_ok=True)
    files = ["summary.json", "results.parquet", "results.json", "results.md"]
    res.results.to_parquet(out / "results.parquet", index=False)
    (out / "results.json").write_text(json.dumps(clean_json(res.results.to_dict(orient="records")), indent=1))
    if timeseries is not None:
        timeseries.to_parquet(out / "timeseries.parquet", index=False)
        files.append("timeseries.parquet")
    if relevance is not None:
        relevance.per_query.to_parquet(out / "relevance_per_query.parquet", index=False)
        (out / "relevance.json").write_text(json.dumps(clean_json(relevance.summary), indent=1))
        files += ["relevance_per_query.parquet", "relevance.json"]
    if relevance_ppi is not None:
        relevance_ppi.per_query.to_parquet(out / "relevance_ppi_per_query.parquet", index=False)
        (out / "relevance_ppi.json").write_text(json.dumps(clean_json(relevance_ppi.summary), indent=1))
        files += ["relevance_ppi_per_query.parquet", "relevance_ppi.json"]
    summary = build_summary(res, meta or {}, files)
    (out / "results.md").write_text(results_markdown(res, summary))
    (out / "summary.json").write_text(json.dumps(clean_json(summary), indent=1))
    return out
