"""Read the files the dashboard shows, with errors that name the file and what was expected.

Pure I/O (no Streamlit). Every failure is a :class:`DashboardDataError` whose message says which
file is missing or malformed and which command writes it, so a page can show it instead of a
traceback. Layouts: the A/B results directory of ``docs/abtest.md`` (``summary.json``,
``results.parquet``, ``timeseries.parquet``, ``relevance.json``, ``relevance_per_query.parquet``,
``users.parquet``, optionally ``relevance_ppi.json`` + ``relevance_ppi_per_query.parquet``) and a bundle's ``eval_report.json`` (``encoders.eval.report``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

SUMMARY = "summary.json"
RESULTS = "results.parquet"
TIMESERIES = "timeseries.parquet"
RELEVANCE = "relevance.json"
RELEVANCE_PER_QUERY = "relevance_per_query.parquet"
RELEVANCE_PPI = "relevance_ppi.json"
RELEVANCE_PPI_PER_QUERY = "relevance_ppi_per_query.parquet"
USERS = "users.parquet"
EVAL_REPORT = "eval_report.json"

ANALYZE_HINT = "written by `searchsage abtest analyze LOGS --control NAME --out RESULTS_DIR`"
RESULT_COLUMNS = ("metric", "role", "segment", "treatment", "control_value", "treatment_value", "abs_delta",
                  "abs_ci_low", "abs_ci_high", "rel_delta", "rel_ci_low", "rel_ci_high", "p_value",
                  "p_value_adjusted", "significant")
SERIES_COLUMNS = ("series", "day", "metric", "arm", "value", "rel_delta", "rel_ci_low", "rel_ci_high")
PER_QUERY_COLUMNS = ("query", "arm", "ndcg_at_k", "precision_at_k", "served_pin_ids")
PPI_PER_QUERY_COLUMNS = ("query", "arm", "judged", "ndcg_at_k_human", "ndcg_at_k_model")
PPI_KEYS = ("mode", "arms", "comparisons", "agreement", "judged_fraction")


class DashboardDataError(ValueError):
    """A result file is missing or malformed; the message names the file and the fix."""


def _json_float(v: Any) -> float:
    """JSON value written by ``abtest.results_io.clean_json`` → float (null → nan, "inf" → inf)."""
    if v is None:
        return math.nan
    if isinstance(v, str):
        return {"inf": math.inf, "-inf": -math.inf}.get(v, math.nan)
    return float(v)


def read_json(path: Path, what: str) -> dict:
    """A JSON object from ``path``; raises :class:`DashboardDataError` naming ``what`` wrote it."""
    if not path.is_file():
        raise DashboardDataError(f"{path} not found ({what})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DashboardDataError(f"{path} is not valid JSON ({exc}); it is {what} — re-run that command") from None
    if not isinstance(data, dict):
        raise DashboardDataError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_parquet(path: Path, columns: tuple[str, ...], what: str) -> pd.DataFrame:
    """A parquet table that must hold ``columns``; raises :class:`DashboardDataError` otherwise."""
    if not path.is_file():
        raise DashboardDataError(f"{path} not found ({what})")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise DashboardDataError(f"{path} is not a readable parquet file ({type(exc).__name__}: {exc})") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DashboardDataError(f"{path}: missing column(s) {missing}; expected {list(columns)} ({what})")
    return df


@dataclass
class ExperimentStatus:
    """One row of the experiments list; ``error`` is set (and the rest may be empty) when unreadable."""

    name: str
    path: Path
    control: str = ""
    running_days: int | None = None
    users_per_arm: dict[str, int] = field(default_factory=dict)
    srm_passed: bool | None = None
    srm_p: float = math.nan
    n_significant: int | None = None
    n_decision: int = 0
    start: str | None = None
    error: str | None = None

    def as_row(self) -> dict[str, Any]:
        users = ", ".join(f"{a}: {n:,}" for a, n in self.users_per_arm.items())
        srm = "" if self.srm_passed is None else ("pass" if self.srm_passed else "FAIL")
        sig = "" if self.n_significant is None else f"{self.n_significant} / {self.n_decision}"
        return {"experiment": self.name, "start": (self.start or "")[:10], "running days": self.running_days,
                "users per arm": users, "SRM": srm, "SRM p": self.srm_p,
                "significant decision metrics": sig, "problem": self.error or ""}


def check_summary(summary: dict, path: Path) -> None:
    """Raise unless ``summary.json`` has the keys the dashboard reads."""
    need = {"experiment": str, "control": str, "users_per_arm": dict, "srm": dict}
    for key, typ in need.items():
        if not isinstance(summary.get(key), typ):
            raise DashboardDataError(f"{path}: key {key!r} missing or not a {typ.__name__} ({ANALYZE_HINT})")
    if not isinstance(summary["srm"].get("passed"), bool):
        raise DashboardDataError(f"{path}: key 'srm.passed' missing or not true/false ({ANALYZE_HINT})")


def experiment_status(exp_dir: Path) -> ExperimentStatus:
    """Status of one experiment directory from its ``summary.json`` (errors go into ``.error``)."""
    status = ExperimentStatus(name=exp_dir.name, path=exp_dir)
    try:
        summary = read_json(exp_dir / SUMMARY, ANALYZE_HINT)
        check_summary(summary, exp_dir / SUMMARY)
    except DashboardDataError as exc:
        status.error = str(exc)
        return status
    srm = summary["srm"]
    status.name = summary["experiment"]
    status.control = summary["control"]
    status.running_days = summary.get("running_days")
    status.users_per_arm = {str(a): int(n) for a, n in summary["users_per_arm"].items()}
    status.srm_passed = bool(srm["passed"])
    status.srm_p = _json_float(srm.get("p", srm.get("p_value")))
    status.n_significant = summary.get("n_significant_decision_metrics")
    status.n_decision = len(summary.get("decision_metrics") or [])
    status.start = summary.get("start")
    return status


def list_experiments(results_root: str | Path) -> list[ExperimentStatus]:
    """Every sub-directory of ``results_root`` holding a ``summary.json``, newest first by name order."""
    root = Path(results_root)
    if not root.is_dir():
        raise DashboardDataError(
            f"results directory {root} does not exist; pass --results DIR (the --out of `searchsage abtest analyze`)"
        )
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and (p / SUMMARY).is_file())
    return [experiment_status(d) for d in dirs]


@dataclass
class Experiment:
    """Everything one experiment directory holds. Optional parts are ``None`` with a ``notes`` entry."""

    name: str
    path: Path
    summary: dict
    results: pd.DataFrame
    timeseries: pd.DataFrame | None = None
    relevance: dict | None = None
    relevance_per_query: pd.DataFrame | None = None
    relevance_ppi: dict | None = None
    relevance_ppi_per_query: pd.DataFrame | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def control(self) -> str:
        return str(self.summary["control"])

    @property
    def srm(self) -> dict:
        return self.summary["srm"]

    @property
    def srm_passed(self) -> bool:
        return bool(self.summary["srm"]["passed"])

    @property
    def treatments(self) -> list[str]:
        return [a for a in self.summary["users_per_arm"] if a != self.control]

    @property
    def users_path(self) -> Path | None:
        p = self.path / USERS
        return p if p.is_file() else None

    def overall(self) -> pd.DataFrame:
        """Rows of segment ``all`` (one per metric × treatment arm)."""
        return self.results[self.results.segment == "all"].reset_index(drop=True)


def load_experiment(results_root: str | Path, name: str) -> Experiment:
    """Read ``results_root/name/``: summary + results are required, the rest optional (noted)."""
    d = Path(results_root) / name
    if not d.is_dir():
        raise DashboardDataError(f"experiment directory {d} does not exist")
    summary = read_json(d / SUMMARY, ANALYZE_HINT)
    check_summary(summary, d / SUMMARY)
    results = read_parquet(d / RESULTS, RESULT_COLUMNS, ANALYZE_HINT)
    exp = Experiment(name=name, path=d, summary=summary, results=results)
    if (d / TIMESERIES).is_file():
        try:
            exp.timeseries = read_parquet(d / TIMESERIES, SERIES_COLUMNS, ANALYZE_HINT)
        except DashboardDataError as exc:
            exp.notes.append(str(exc))
    else:
        exp.notes.append(f"{d / TIMESERIES} not found: no per-day data (the input had no user_days.parquet)")
    if (d / RELEVANCE).is_file() or (d / RELEVANCE_PER_QUERY).is_file():
        try:
            exp.relevance = read_json(d / RELEVANCE, ANALYZE_HINT)
            for key in ("mean", "comparisons"):
                if key not in exp.relevance:
                    raise DashboardDataError(f"{d / RELEVANCE}: key {key!r} missing ({ANALYZE_HINT})")
            exp.relevance_per_query = read_parquet(d / RELEVANCE_PER_QUERY, PER_QUERY_COLUMNS, ANALYZE_HINT)
        except DashboardDataError as exc:
            exp.relevance, exp.relevance_per_query = None, None
            exp.notes.append(str(exc))
    else:
        exp.notes.append(f"{d / RELEVANCE} not found: relevance needs served.parquet + judgments.parquet "
                         "next to the logs when analysing")
    load_relevance_ppi(exp)
    return exp


def load_relevance_ppi(exp: Experiment) -> None:
    """Fill ``exp.relevance_ppi`` (+ per-query table) when ``relevance_ppi.json`` exists (older results: note only)."""
    d = exp.path
    if not (d / RELEVANCE_PPI).is_file():
        exp.notes.append(f"{d / RELEVANCE_PPI} not found: model-label (PPI) relevance needs served.parquet + "
                         "model_labels.parquet next to the logs when analysing")
        return
    try:
        data = read_json(d / RELEVANCE_PPI, ANALYZE_HINT)
        missing = [k for k in PPI_KEYS if k not in data]
        if missing:
            raise DashboardDataError(f"{d / RELEVANCE_PPI}: key(s) {missing} missing ({ANALYZE_HINT})")
        per_query = None
        if (d / RELEVANCE_PPI_PER_QUERY).is_file():
            per_query = read_parquet(d / RELEVANCE_PPI_PER_QUERY, PPI_PER_QUERY_COLUMNS, ANALYZE_HINT)
        exp.relevance_ppi, exp.relevance_ppi_per_query = data, per_query
    except DashboardDataError as exc:
        exp.notes.append(str(exc))


def ppi_estimates_table(ppi: dict) -> pd.DataFrame:
    """Tidy rows of ``relevance_ppi.json``: one per (scope, metric, arm, estimator) with estimate and CI.

    ``scope`` is ``"arm"`` (an arm's mean) or ``"delta"`` (treatment − control, ``arm`` = the treatment).
    """
    rows = [{"scope": "arm", "metric": r["metric"], "arm": r["arm"], "estimator": r["estimator"],
             "estimate": _json_float(r.get("estimate")), "ci_low": _json_float(r.get("ci_low")),
             "ci_high": _json_float(r.get("ci_high")), "n_labelled": r.get("n_labelled"),
             "n_unlabelled": r.get("n_unlabelled"), "p_value": math.nan}
            for r in ppi.get("arms", [])]
    for c in ppi.get("comparisons", []):
        ci = c.get("abs_ci") or [None, None]
        rows.append({"scope": "delta", "metric": c["metric"], "arm": c.get("treatment", ""),
                     "estimator": c["estimator"], "estimate": _json_float(c.get("abs_delta")),
                     "ci_low": _json_float(ci[0]), "ci_high": _json_float(ci[1]), "n_labelled": c.get("n_control"),
                     "n_unlabelled": None, "p_value": _json_float(c.get("p_value"))})
    return pd.DataFrame(rows, columns=["scope", "metric", "arm", "estimator", "estimate", "ci_low", "ci_high",
                                       "n_labelled", "n_unlabelled", "p_value"])


def load_users(path: Path, columns: list[str]) -> pd.DataFrame:
    """``arm``, ``segment`` and ``columns`` of a per-user table (segment ``all`` rows only, if segmented)."""
    try:
        df = pd.read_parquet(path)
    except Exception as exc:
        raise DashboardDataError(f"{path} is not a readable parquet file ({type(exc).__name__}: {exc})") from None
    missing = [c for c in ["arm", *columns] if c not in df.columns]
    if missing:
        raise DashboardDataError(f"{path}: missing column(s) {missing} (the per-user table of `abtest aggregate`)")
    if "segment" in df.columns:
        df = df[df.segment == "all"]
    return df


def load_eval_report(bundle: str | Path) -> dict:
    """The bundle's ``eval_report.json`` (from ``searchsage evaluate``, copied by ``searchsage export``)."""
    path = Path(bundle) / EVAL_REPORT
    what = "written by `searchsage evaluate --run RUN` and copied into the bundle by `searchsage export`"
    report = read_json(path, what)
    systems = report.get("systems")
    if not isinstance(systems, list) or not systems:
        raise DashboardDataError(f"{path}: key 'systems' missing or empty — not a training/eval report ({what})")
    for i, s in enumerate(systems):
        if not isinstance(s, dict) or not {"name", "recall", "ndcg", "precision"} <= set(s):
            raise DashboardDataError(f"{path}: systems[{i}] needs name, recall, ndcg, precision ({what})")
    return report


def read_manifest(bundle: str | Path, kind: str = "query") -> dict:
    """``bundle/<kind>/manifest.json`` (or ``bundle/manifest.json`` for a single tower directory)."""
    b = Path(bundle)
    path = b / kind / "manifest.json"
    if not path.is_file() and (b / "manifest.json").is_file():
        path = b / "manifest.json"
    return read_json(path, "written by `searchsage export`")


@dataclass
class PinTable:
    """Pins for the explorer: ``ids`` and ``texts`` (length N) and optional ``(N, D)`` float32 embeddings."""

    ids: list[str]
    texts: list[str]
    embedding: np.ndarray | None


def load_pins(path: str | Path) -> PinTable:
    """``pin_id``, ``text`` and (if present) ``embedding`` of a pins parquet."""
    p = Path(path)
    cols = ("pin_id", "text")
    df = read_parquet(p, cols, "a pins table: pin_id, text[, embedding] — e.g. DATASET/pins.parquet")
    if df.empty:
        raise DashboardDataError(f"{p}: the pins table is empty")
    df = df.drop_duplicates("pin_id", keep="last")
    emb = None
    if "embedding" in df.columns and df["embedding"].notna().all():
        try:
            emb = np.asarray(np.stack(df["embedding"].to_numpy()), dtype=np.float32)
        except ValueError:
            raise DashboardDataError(f"{p}, column 'embedding': rows have different lengths") from None
    return PinTable(df["pin_id"].astype(str).tolist(), df["text"].astype(str).tolist(), emb)
