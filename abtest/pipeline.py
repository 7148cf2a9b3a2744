"""End-to-end: logs directory or per-user table → analysis → time series → relevance → results dir.

Input resolution (``analyze_path``):

* a **logs directory** (has ``exposures``): aggregated first (:mod:`abtest.aggregate`) into
  ``OUT/<experiment>/users.parquet`` + ``user_days.parquet``;
* a directory holding ``users.parquet`` (an earlier ``abtest aggregate`` output or a warehouse
  export), or a ``.parquet`` per-user table file (its sibling ``user_days.parquet``, if any, gives
  the time series).

Relevance is added when ``served.parquet`` and ``judgments.parquet`` are found (next to the input or
given explicitly); the PPI relevance estimates when ``served.parquet`` and ``model_labels.parquet``
are found (with judgments if present, else model-only).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from abtest.aggregate import AggregateConfig, AggregateResult, aggregate_logs
from abtest.analysis import AnalysisConfig, AnalysisResult, analyze_user_table
from abtest.logs import LogValidationError
from abtest.relevance_ppi import PPIRelevance
from abtest.relevance_report import RelevanceReport, ppi_from_files, relevance_from_files
from abtest.results_io import write_results
from abtest.timeseries import SeriesConfig, build_timeseries


@dataclass
class PipelineOutput:
    """Where results went and what was computed."""

    out_dir: Path
    analysis: AnalysisResult
    aggregate: AggregateResult | None
    relevance: RelevanceReport | None
    relevance_ppi: PPIRelevance | None = None


def _is_logs_dir(p: Path) -> bool:
    return p.is_dir() and ((p / "exposures.parquet").is_file() or (p / "exposures").is_dir())


def resolve_user_table(path: Path) -> tuple[Path, Path | None]:
    """``(users.parquet, user_days.parquet or None)`` for a per-user input path."""
    users = path / "users.parquet" if path.is_dir() else path
    if not users.is_file():
        raise LogValidationError(
            path, "not a logs directory (no exposures log), not a users.parquet per-user table, "
            "and not a directory holding one"
        )
    days = users.parent / "user_days.parquet"
    return users, days if days.is_file() else None


def analyze_path(
    source: str | Path, out_root: str | Path, config: AnalysisConfig, experiment: str | None = None,
    aggregate_config: AggregateConfig | None = None, served: str | Path | None = None,
    judgments: str | Path | None = None, timeseries: bool = True, model_labels: str | Path | None = None,
) -> PipelineOutput:
    """Run the whole analysis and write ``out_root/<experiment>/``; raises ``SRMFailed`` before writing."""
    import duckdb

    source, out_root = Path(source), Path(out_root)
    agg = None
    meta: dict = {"source": str(source)}
    if _is_logs_dir(source):
        acfg = aggregate_config or AggregateConfig()
        acfg.experiment = experiment or acfg.experiment
        tmp = Path(tempfile.mkdtemp(prefix=".aggregate-", dir=out_root if out_root.exists() else None))
        try:
            agg = aggregate_logs(source, tmp, acfg)
            final = out_root / agg.experiment
            final.mkdir(parents=True, exist_ok=True)
            for name in ("users.parquet", "user_days.parquet"):
                shutil.move(str(tmp / name), final / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        users, days = final / "users.parquet", final / "user_days.parquet"
        experiment = agg.experiment
        meta.update(start=agg.start, end=agg.end, running_days=agg.running_days,
                    multi_arm_users_excluded=agg.multi_arm_users_excluded, long_click_s=acfg.long_click_s,
                    pre_period_days=acfg.pre_period_days)
        base = source
    else:
        users, days = resolve_user_table(source)
        base = users.parent
    res = analyze_user_table(users, config, experiment=experiment)
    series = None
    if timeseries and days is not None:
        con = duckdb.connect()
        try:
            con.execute(f"SET memory_limit = '{config.memory_limit}'; SET threads = {int(config.threads)}")
            start = meta.get("start")
            series = build_timeseries(con, users, days, res.metrics, SeriesConfig(
                control=config.control, alpha=config.alpha, sequential=config.sequential,
                n_tune=config.n_tune or float(sum(res.arms.values())), start_date=start[:10] if start else None))
        finally:
            con.close()
        if meta.get("running_days") is None and len(series):
            meta["running_days"] = int(series.day.max()) + 1
    served = Path(served) if served else base / "served.parquet"
    judgments = Path(judgments) if judgments else base / "judgments.parquet"
    relevance = None
    if served.is_file() and judgments.is_file():
        relevance = relevance_from_files(served, judgments, config.control, alpha=config.alpha)
    model_labels = Path(model_labels) if model_labels else base / "model_labels.parquet"
    rel_ppi = None
    if served.is_file() and model_labels.is_file():
        rel_ppi = ppi_from_files(served, judgments if judgments.is_file() else None, model_labels, config.control,
                                 alpha=config.alpha)
    sim = base / "simulation.json"
    if sim.is_file():
        meta["simulation"] = json.loads(sim.read_text()).get("config", {})
    meta.update(cuped=config.cuped, sequential=config.sequential)
    out = write_results(res, out_root, meta, series, relevance, rel_ppi)
    return PipelineOutput(out, res, agg, relevance, rel_ppi)
