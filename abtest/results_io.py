"""Write the A/B results directory ``OUT/<experiment>/`` (the contract the dashboard reads).

Files (documented in ``docs/abtest.md``): ``summary.json``, ``results.parquet`` / ``.json`` /
``.md``, ``timeseries.parquet`` (when per-day data exist), ``relevance_per_query.parquet`` and
``relevance.json`` (when served results and judgments exist), ``relevance_ppi.json`` and
``relevance_ppi_per_query.parquet`` (when served results and model labels exist). JSON floats ``nan``/``inf`` are
written as ``null`` / ``"inf"`` / ``"-inf"`` so any JSON reader can load them.

Both sides of the contract are here: :func:`write_results` writes the directory, and the readers
(:func:`read_summary`, :func:`read_results_table`, :func:`read_timeseries`,
:func:`read_relevance`, :func:`read_relevance_ppi` ...) read it back with the schema checked,
raising :class:`ResultsFileError` whose message names the file and the command that writes it.
The file names and required columns are declared once, below.
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
from encoders.json_files import read_json_object

SCHEMA_VERSION = 1

# The results directory's files (docs/abtest.md).
SUMMARY = "summary.json"
RESULTS = "results.parquet"
RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
TIMESERIES = "timeseries.parquet"
RELEVANCE = "relevance.json"
RELEVANCE_PER_QUERY = "relevance_per_query.parquet"
RELEVANCE_PPI = "relevance_ppi.json"
RELEVANCE_PPI_PER_QUERY = "relevance_ppi_per_query.parquet"
USERS = "users.parquet"

#: Where a results directory comes from, quoted in every reader error.
ANALYZE_HINT = "written by `searchsage abtest analyze LOGS --control NAME --out RESULTS_DIR`"
# Columns (keys) a reader requires of each file.
RESULT_COLUMNS = ("metric", "role", "segment", "treatment", "control_value", "treatment_value", "abs_delta",
                  "abs_ci_low", "abs_ci_high", "rel_delta", "rel_ci_low", "rel_ci_high", "p_value",
                  "p_value_adjusted", "significant")
SERIES_COLUMNS = ("series", "day", "metric", "arm", "value", "rel_delta", "rel_ci_low", "rel_ci_high")
PER_QUERY_COLUMNS = ("query", "arm", "ndcg_at_k", "precision_at_k", "served_pin_ids")
PPI_PER_QUERY_COLUMNS = ("query", "arm", "judged", "ndcg_at_k_human", "ndcg_at_k_model")
RELEVANCE_KEYS = ("mean", "comparisons")
PPI_KEYS = ("mode", "arms", "comparisons", "agreement", "judged_fraction")


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
    files = [SUMMARY, RESULTS, RESULTS_JSON, RESULTS_MD]
    res.results.to_parquet(out / RESULTS, index=False)
    (out / RESULTS_JSON).write_text(json.dumps(clean_json(res.results.to_dict(orient="records")), indent=1))
    if timeseries is not None:
        timeseries.to_parquet(out / TIMESERIES, index=False)
        files.append(TIMESERIES)
    if relevance is not None:
        relevance.per_query.to_parquet(out / RELEVANCE_PER_QUERY, index=False)
        (out / RELEVANCE).write_text(json.dumps(clean_json(relevance.summary), indent=1))
        files += [RELEVANCE_PER_QUERY, RELEVANCE]
    if relevance_ppi is not None:
        relevance_ppi.per_query.to_parquet(out / RELEVANCE_PPI_PER_QUERY, index=False)
        (out / RELEVANCE_PPI).write_text(json.dumps(clean_json(relevance_ppi.summary), indent=1))
        files += [RELEVANCE_PPI_PER_QUERY, RELEVANCE_PPI]
    summary = build_summary(res, meta or {}, files)
    (out / RESULTS_MD).write_text(results_markdown(res, summary))
    (out / SUMMARY).write_text(json.dumps(clean_json(summary), indent=1))
    return out


# --- reading ----------------------------------------------------------------------------------------------


class ResultsFileError(ValueError):
    """A result file is missing or malformed; the message names the file and the fix."""


def json_float(v: Any) -> float:
    """A JSON value written by :func:`clean_json` → float (null → nan, "inf" → inf)."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(v, math.nan)
    return float(v)


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; raises :class:`ResultsFileError` naming ``what`` wrote it."""
    return read_json_object(path, what, ResultsFileError)


def read_parquet(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """A parquet table that must hold ``columns``; raises :class:`ResultsFileError` otherwise."""
    if not path.is_file():
        raise ResultsFileError(f"{path} not found ({what})")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise ResultsFileError(f"{path} is not a readable parquet file ({type(exc).__name__}: {exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ResultsFileError(f"{path}: missing column(s) {missing}; expected {list(columns)} ({what})")
    return df


def check_summary(summary: dict, path: Path) -> None:
    """Raise unless ``summary.json`` has the keys every reader relies on."""
    need = {"experiment": str, "control": str, "users_per_arm": dict, "srm": dict}
    for key, typ in need.items():
        if not isinstance(summary.get(key), typ):
            raise ResultsFileError(f"{path}: key {key!r} missing or not a {typ.__name__} ({ANALYZE_HINT})")
    if not isinstance(summary["srm"].get("passed"), bool):
        raise ResultsFileError(f"{path}: key 'srm.passed' missing or not true/false ({ANALYZE_HINT})")


def read_summary(exp_dir: Path) -> dict:
    """``exp_dir/summary.json``, checked (:func:`check_summary`)."""
    summary = read_json(exp_dir / SUMMARY, ANALYZE_HINT)
    check_summary(summary, exp_dir / SUMMARY)
    return summary


def read_results_table(exp_dir: Path) -> pd.DataFrame:
    """``exp_dir/results.parquet`` with the :data:`RESULT_COLUMNS`."""
    return read_parquet(exp_dir / RESULTS, RESULT_COLUMNS, ANALYZE_HINT)


def read_timeseries(exp_dir: Path) -> pd.DataFrame:
    """``exp_dir/timeseries.parquet`` with the :data:`SERIES_COLUMNS`."""
    return read_parquet(exp_dir / TIMESERIES, SERIES_COLUMNS, ANALYZE_HINT)


def read_relevance(exp_dir: Path) -> tuple[dict, pd.DataFrame]:
    """``relevance.json`` (with :data:`RELEVANCE_KEYS`) and ``relevance_per_query.parquet``."""
    data = read_json(exp_dir / RELEVANCE, ANALYZE_HINT)
    for key in RELEVANCE_KEYS:
        if key not in data:
            raise ResultsFileError(f"{exp_dir / RELEVANCE}: key {key!r} missing ({ANALYZE_HINT})")
    return data, read_parquet(exp_dir / RELEVANCE_PER_QUERY, PER_QUERY_COLUMNS, ANALYZE_HINT)


def read_relevance_ppi(exp_dir: Path) -> tuple[dict, pd.DataFrame | None]:
    """``relevance_ppi.json`` (with :data:`PPI_KEYS`) and its per-query table when present."""
    data = read_json(exp_dir / RELEVANCE_PPI, ANALYZE_HINT)
    missing = [k for k in PPI_KEYS if k not in data]
    if missing:
        raise ResultsFileError(f"{exp_dir / RELEVANCE_PPI}: key(s) {missing} missing ({ANALYZE_HINT})")
    per_query = None
    if (exp_dir / RELEVANCE_PPI_PER_QUERY).is_file():
        per_query = read_parquet(exp_dir / RELEVANCE_PPI_PER_QUERY, PPI_PER_QUERY_COLUMNS, ANALYZE_HINT)
    return data, per_query
