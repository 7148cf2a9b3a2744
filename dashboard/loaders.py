"""Read the files the dashboard shows, with errors that name the file and what was expected.

Pure I/O (no Streamlit). Every failure is a :class:`DashboardDataError` whose message says which
file is missing or malformed and which command writes it, so a page can show it instead of a
traceback. The files' names and schemas are not repeated here: the A/B results directory of
``docs/abtest.md`` is read through :mod:`abtest.results_io` (which also writes it), a bundle's
``eval_report.json`` through :func:`encoders.eval.report.read_report_json`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abtest.results_io import (
    RELEVANCE,
    RELEVANCE_PER_QUERY,
    RELEVANCE_PPI,
    SUMMARY,
    TIMESERIES,
    USERS,
    ResultsFileError,
    read_json,
    read_parquet,
    read_relevance,
    read_relevance_ppi,
    read_results_table,
    read_summary,
    read_timeseries,
)
from abtest.results_io import json_float as _json_float

#: Every failure a page shows: the results directory's own reader error (an alias, so one type).
DashboardDataError = ResultsFileError


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


def experiment_status(exp_dir: Path) -> ExperimentStatus:
    """Status of one experiment directory from its ``summary.json`` (errors go into ``.error``)."""
    status = ExperimentStatus(name=exp_dir.name, path=exp_dir)
    try:
        summary = read_summary(exp_dir)
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
    summary = read_summary(d)
    results = read_results_table(d)
    exp = Experiment(name=name, path=d, summary=summary, results=results)
    if (d / TIMESERIES).is_file():
        try:
            exp.timeseries = read_timeseries(d)
        except DashboardDataError as exc:
            exp.notes.append(str(exc))
    else:
        exp.notes.append(f"{d / TIMESERIES} not found: no per-day data (the input had no user_days.parquet)")
    if (d / RELEVANCE).is_file() or (d / RELEVANCE_PER_QUERY).is_file():
        try:
            exp.relevance, exp.relevance_per_query = read_relevance(d)
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
        exp.relevance_ppi, exp.relevance_ppi_per_query = read_relevance_ppi(d)
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
    from encoders.eval.report import REPORT_JSON, ReportFileError, read_report_json

    try:
        return read_report_json(Path(bundle) / REPORT_JSON)
    except ReportFileError as exc:
        raise DashboardDataError(str(exc)) from None


def load_homefeed_report(path: str | Path) -> dict:
    """A homefeed ``eval_report.json`` (or the directory holding it), from ``searchsage homefeed evaluate``."""
    from encoders.homefeed.report import HomefeedReportError, read_report

    try:
        return read_report(path)
    except HomefeedReportError as exc:
        raise DashboardDataError(str(exc)) from None


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
