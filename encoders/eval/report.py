"""Offline evaluation of SearchSage against baselines → :class:`EvalReport` (+ JSON / Markdown).

:func:`evaluate` loads the held-out split of a dataset (:mod:`encoders.eval.evalset`), ranks an
index of pins with each system (:mod:`encoders.eval.systems`) and reports, per system:

* Recall@k (pair level, :mod:`encoders.eval.retrieval`) overall and per engagement ``task``;
* nDCG@10 and P@8 from ``judgments.parquet`` (:mod:`encoders.eval.ranking_metrics`; unjudged
  results count as not relevant), averaged over judged eval queries;
* the paired-bootstrap 95% CI of its Recall@10 minus that of the best baseline;
* optionally faiss HNSW Recall@k and the HNSW-vs-exact overlap (``ann_recall``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from encoders.eval.bootstrap import BootstrapCI, paired_bootstrap_diff
from encoders.eval.config import DEFAULT_RELEVANT_GRADE, DEFAULT_SYSTEMS, RUN_SYSTEMS, EvalConfig, HNSWConfig
from encoders.eval.evalset import EvalInputError, EvalSet, load_eval_set
from encoders.eval.ranking_metrics import grades_for, ndcg_at_k, precision_at_k
from encoders.eval.retrieval import (
    HNSWIndex,
    ann_recall,
    pair_hit_rank,
    per_query_hits,
    recall_at_k,
)
from encoders.eval.systems import BASELINES, SystemOptions, SystemRun, run_systems

REPORT_JSON = "eval_report.json"
REPORT_MD = "eval_report.md"
#: Where an ``eval_report.json`` comes from, quoted in :func:`read_report_json`'s errors.
REPORT_HINT = "written by `searchsage evaluate --run RUN` and copied into the bundle by `searchsage export`"


class ReportFileError(ValueError):
    """An ``eval_report.json`` is missing or malformed; the message names the file and the fix."""


def read_report_json(path: str | Path) -> dict:
    """The raw ``eval_report.json`` object at ``path``, its ``systems`` checked (each needs ``name``,
    ``recall``, ``ndcg``, ``precision``); :class:`ReportFileError` otherwise. Readers that want the
    dataclasses use :meth:`EvalReport.read_json`."""
    from encoders.json_files import read_json_object

    p = Path(path)
    report = read_json_object(p, REPORT_HINT, ReportFileError)
    systems = report.get("systems")
    if not isinstance(systems, list) or not systems:
        raise ReportFileError(f"{p}: key 'systems' missing or empty — not a training/eval report ({REPORT_HINT})")
    for i, s in enumerate(systems):
        if not isinstance(s, dict) or not {"name", "recall", "ndcg", "precision"} <= set(s):
            raise ReportFileError(f"{p}: systems[{i}] needs name, recall, ndcg, precision ({REPORT_HINT})")
    return report


def _num(v: object) -> float:
    return float("nan") if v is None else float(v)  # type: ignore[arg-type]


def _nan_to_none(obj: object) -> object:
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_nan_to_none(v) for v in obj]
    return obj


@dataclass
class SystemResult:
    """Metrics of one system. ``recall[k]`` pair-level Recall@k; ``per_task[task][k]`` likewise.

    ``delta`` is the bootstrap CI of ``Recall@k0 − Recall@k0(best baseline)`` (``k0`` = first k);
    ``None`` for the best baseline itself. ``hnsw`` holds ``ef_search``, ``recall`` and
    ``ann_recall`` (share of the exact top-k that HNSW returns) when HNSW was requested.
    """

    name: str
    recall: dict[int, float]
    ndcg: float
    precision: float
    per_task: dict[str, dict[int, float]] = field(default_factory=dict)
    delta: BootstrapCI | None = None
    hnsw: dict[str, object] | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["recall"] = {str(k): v for k, v in self.recall.items()}
        d["per_task"] = {t: {str(k): v for k, v in r.items()} for t, r in self.per_task.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> SystemResult:
        d = dict(d)
        d["recall"] = {int(k): _num(v) for k, v in d["recall"].items()}  # type: ignore[union-attr]
        d["per_task"] = {t: {int(k): _num(v) for k, v in r.items()} for t, r in d["per_task"].items()}  # type: ignore[union-attr]
        d["ndcg"], d["precision"] = _num(d["ndcg"]), _num(d["precision"])
        d["delta"] = BootstrapCI(**d["delta"]) if d.get("delta") else None  # type: ignore[arg-type]
        return cls(**d)  # type: ignore[arg-type]


@dataclass
class EvalReport:
    """One evaluation: the protocol (index, split, metric settings), counts and a row per system."""

    dataset: str
    run_dir: str | None
    ks: list[int]
    n_pins: int
    index_size: int
    index_sampled: bool
    n_eval_queries: int
    n_pairs: int
    task_pairs: dict[str, int]
    n_judged_queries: int
    ndcg_k: int
    precision_k: int
    relevant_grade: float
    min_grade: float
    seed: int
    bootstrap_reps: int
    best_baseline: str | None
    systems: list[SystemResult]
    created_at: str = ""
    seconds: float = 0.0

    def system(self, name: str) -> SystemResult:
        for s in self.systems:
            if s.name == name:
                return s
        raise KeyError(f"no system {name!r} in the report; have {[s.name for s in self.systems]}")

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["systems"] = [s.to_dict() for s in self.systems]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> EvalReport:
        d = dict(d)
        d["systems"] = [SystemResult.from_dict(s) for s in d["systems"]]  # type: ignore[union-attr]
        return cls(**d)  # type: ignore[arg-type]

    def to_json(self) -> str:
        """Strict JSON: an undefined metric (``nan``, e.g. no judgments) is written as ``null``."""
        return json.dumps(_nan_to_none(self.to_dict()), indent=2, allow_nan=False)

    @classmethod
    def read_json(cls, path: str | Path) -> EvalReport:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_markdown(self) -> str:
        return render_markdown(self)

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``eval_report.json`` and ``eval_report.md`` into ``out_dir`` → their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        j, m = out / REPORT_JSON, out / REPORT_MD
        j.write_text(self.to_json())
        m.write_text(self.to_markdown())
        return j, m


def _fmt(x: float | None) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.3f}"


def _fmt_delta(s: SystemResult, best: str | None) -> str:
    if best is None:
        return "–"
    if s.name == best:
        return "baseline"
    if s.delta is None:
        return "–"
    c = s.delta
    return f"{c.diff:+.3f} [{c.low:+.3f}, {c.high:+.3f}]" + (" *" if c.significant else "")


def render_markdown(r: EvalReport) -> str:
    """The report as Markdown: a protocol line, the main table, per-task and HNSW tables."""
    k0 = r.ks[0]
    idx = f"random sample of {r.index_size:,} of {r.n_pins:,} pins (seed {r.seed})" if r.index_sampled else (
        f"all {r.n_pins:,} pins"
    )
    lines = [
        f"# Offline evaluation — `{r.dataset}`",
        "",
        f"Index: {idx}. Held-out split: {r.n_eval_queries:,} eval queries, {r.n_pairs:,} (query, engaged pin) "
        f"pairs, {r.n_judged_queries:,} judged queries (P@{r.precision_k}: grade ≥ {r.relevant_grade:g}; "
        f"nDCG gain 2^(grade−{r.min_grade:g})−1; unjudged = not relevant).",
        "",
        "| system | " + " | ".join(f"Recall@{k}" for k in r.ks)
        + f" | nDCG@{r.ndcg_k} | P@{r.precision_k} | Δ Recall@{k0} vs {r.best_baseline or 'baseline'} (95% CI) |",
        "|---" * (len(r.ks) + 4) + "|",
    ]
    for s in r.systems:
        cells = [s.name, *(_fmt(s.recall.get(k)) for k in r.ks), _fmt(s.ndcg), _fmt(s.precision)]
        lines.append("| " + " | ".join([*cells, _fmt_delta(s, r.best_baseline)]) + " |")
    lines += ["", f"Δ: paired bootstrap over queries, {r.bootstrap_reps} replicates, seed {r.seed}; "
              "* = interval excludes 0."]
    tasks = sorted(r.task_pairs)
    if tasks:
        lines += ["", f"## Recall@{k0} per task", "",
                  "| system | " + " | ".join(f"{t} ({r.task_pairs[t]:,} pairs)" for t in tasks) + " |",
                  "|---" * (len(tasks) + 1) + "|"]
        for s in r.systems:
            lines.append("| " + " | ".join([s.name, *(_fmt(s.per_task.get(t, {}).get(k0)) for t in tasks)]) + " |")
    hn = [s for s in r.systems if s.hnsw]
    if hn:
        lines += ["", "## faiss HNSW (inner product)", "",
                  "| system | efSearch | " + " | ".join(f"Recall@{k} (HNSW) | overlap@{k} with exact" for k in r.ks)
                  + " |", "|---" * (2 + 2 * len(r.ks)) + "|"]
        for s in hn:
            h = s.hnsw or {}
            rec, ann = h.get("recall", {}), h.get("ann_recall", {})
            cells = [s.name, str(h.get("ef_search"))]
            for k in r.ks:
                cells += [_fmt(rec.get(str(k))), _fmt(ann.get(str(k)))]  # type: ignore[union-attr]
            lines.append("| " + " | ".join(cells) + " |")
    notes = [f"- `{s.name}`: {'; '.join(s.notes)} ({s.seconds:.0f} s)" for s in r.systems]
    lines += ["", "## Notes", "", *notes, ""]
    return "\n".join(lines)


def _judged_metrics(
    ev: EvalSet, ranking: np.ndarray, ndcg_k: int, precision_k: int, relevant_grade: float, min_grade: float
) -> tuple[float, float]:
    """Mean nDCG@k (over judged queries with a positive-gain item) and mean P@k (all judged queries)."""
    pin_ids = ev.index_pin_ids
    nd, pr = [], []
    for qi, judged in ev.judged.items():
        served = [pin_ids[j] for j in ranking[qi, : max(ndcg_k, precision_k)] if j >= 0]
        g = grades_for(served, judged)
        v = ndcg_at_k(g, list(judged.values()), ndcg_k, min_grade)
        if np.isfinite(v):
            nd.append(v)
        pr.append(precision_at_k(g, precision_k, relevant_grade))
    return (float(np.mean(nd)) if nd else float("nan"), float(np.mean(pr)) if pr else float("nan"))


def _hnsw_metrics(
    ev: EvalSet, run: SystemRun, ks: Sequence[int], cfg: HNSWConfig, cache: dict[int, HNSWIndex]
) -> dict[str, object]:
    t0 = time.perf_counter()
    key = id(run.index)
    if key not in cache:
        cache[key] = HNSWIndex(run.index, cfg)  # type: ignore[arg-type]
    build = time.perf_counter() - t0
    t1 = time.perf_counter()
    approx, _ = cache[key].search(run.queries, max(ks))  # type: ignore[arg-type]
    search = time.perf_counter() - t1
    rank = pair_hit_rank(approx, ev.pair_query, ev.pair_pin)
    return {
        "ef_search": cfg.ef_search, "m": cfg.m, "ef_construction": cfg.ef_construction,
        "recall": {str(k): v for k, v in recall_at_k(rank, ks).items()},
        "ann_recall": {str(k): ann_recall(approx, run.ranking, k) for k in ks},
        "build_s": round(build, 3), "search_s": round(search, 3),
    }


def evaluate(
    dataset_dir: str | Path,
    run_dir: str | Path | None = None,
    systems: Sequence[str] | None = EvalConfig.systems,
    index_size: int | None = EvalConfig.index_size,
    k: Sequence[int] = EvalConfig.k,
    hnsw: bool = EvalConfig.hnsw,
    *,
    hnsw_config: HNSWConfig | None = None,
    base_model: str | Path | None = EvalConfig.base_model,
    relevant_grade: float | None = EvalConfig.relevant_grade,
    min_grade: float | None = None,
    ndcg_k: int = 10,
    precision_k: int = 8,
    seed: int = EvalConfig.seed,
    bootstrap_reps: int = EvalConfig.bootstrap_reps,
    options: SystemOptions | None = None,
    out_dir: str | Path | None = None,
    progress: bool = False,
) -> EvalReport:
    """Evaluate ``systems`` on the held-out split of ``dataset_dir`` → :class:`EvalReport`.

    The defaults are :class:`~encoders.eval.config.EvalConfig`'s (the options of ``searchsage
    evaluate``, declared there once); ``hnsw_config`` defaults to :class:`HNSWConfig`'s.
    ``systems`` defaults to ``bm25, zero_shot`` plus ``searchsage, prf, blend`` when ``run_dir`` is
    given. ``index_size=None`` indexes every pin; an int samples that many (seeded, positives
    always in). ``relevant_grade`` (P@k threshold) defaults to the dataset's
    ``dataset.json:positive_threshold``, else 2.67; ``min_grade`` (zero-gain grade for nDCG) to
    the lowest judged grade. The report is written to ``out_dir``, else into ``run_dir`` when given.
    """
    t0 = time.perf_counter()
    ks = sorted({int(x) for x in k})
    if not ks or ks[0] < 1:
        raise EvalInputError(f"k must be positive integers, got {list(k)}")
    if systems is None:
        systems = [*DEFAULT_SYSTEMS, *(RUN_SYSTEMS if run_dir is not None else ())]
    systems = list(dict.fromkeys(systems))
    if not systems:
        raise EvalInputError("no systems to evaluate")
    ev = load_eval_set(dataset_dir, index_size=index_size, seed=seed)
    base = options or SystemOptions()
    opts = replace(base, depth=max(ks[-1], ndcg_k, precision_k), progress=progress)
    runs = run_systems(ev, systems, run_dir, base_model, opts)

    if relevant_grade is None:
        relevant_grade = float(ev.metadata.get("positive_threshold", DEFAULT_RELEVANT_GRADE))  # type: ignore[arg-type]
    if min_grade is None:
        grades = [g for d in ev.judged.values() for g in d.values()]
        min_grade = float(min(grades)) if grades else 0.0
    hcfg = hnsw_config or HNSWConfig()
    cache: dict[int, HNSWIndex] = {}
    n_q = len(ev.queries)
    results, hits = [], {}
    for name, run in runs.items():
        rank = pair_hit_rank(run.ranking, ev.pair_query, ev.pair_pin)
        hits[name] = per_query_hits(rank, ev.pair_query, n_q, ks[0])
        per_task = {
            t: recall_at_k(pair_hit_rank(run.ranking, tq, tp), ks) for t, (tq, tp) in ev.task_pairs.items()
        }
        nd, pr = _judged_metrics(ev, run.ranking, ndcg_k, precision_k, relevant_grade, min_grade)
        res = SystemResult(name, recall_at_k(rank, ks), nd, pr, per_task, seconds=round(run.seconds, 2),
                           notes=list(run.notes))
        if hnsw and run.index is not None:
            res.hnsw = _hnsw_metrics(ev, run, ks, hcfg, cache)
        results.append(res)

    baselines = [r for r in results if r.name in BASELINES and np.isfinite(r.recall[ks[0]])]
    best = max(baselines, key=lambda r: r.recall[ks[0]]).name if baselines else None
    if best is not None and ev.pair_query.size:
        for r in results:
            if r.name != best:
                r.delta = paired_bootstrap_diff(hits[r.name][0], hits[best][0], hits[best][1], bootstrap_reps, seed)
    report = EvalReport(
        dataset=str(Path(dataset_dir)), run_dir=str(run_dir) if run_dir is not None else None, ks=ks,
        n_pins=ev.pins.num_rows, index_size=int(ev.index_rows.size), index_sampled=ev.index_rows.size < ev.pins.num_rows,
        n_eval_queries=n_q, n_pairs=int(ev.pair_query.size),
        task_pairs={t: int(q.size) for t, (q, _) in ev.task_pairs.items()}, n_judged_queries=len(ev.judged),
        ndcg_k=ndcg_k, precision_k=precision_k, relevant_grade=relevant_grade, min_grade=min_grade, seed=seed,
        bootstrap_reps=bootstrap_reps, best_baseline=best, systems=results,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), seconds=round(time.perf_counter() - t0, 2),
    )
    target = out_dir if out_dir is not None else run_dir
    if target is not None:
        report.write(target)
    return report
