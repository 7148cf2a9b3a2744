"""Offline relevance evaluation: score every judged pair of held-out queries with each system.

:func:`select_queries` keeps the queries of one split (``eval`` by default) that hold **two or more
distinct grades** among their judged pins (a query whose items all share one grade cannot rank
anything), optionally a seeded subset of them. :func:`evaluate_systems` calls each
:data:`~encoders.relevance.scorers.Scorer` on those pairs (in chunks of whole queries, timing the
scorer calls only → pairs/s; a scorer's ``prepare(queries)``, when it has one, runs untimed first:
the student reads the stored query vectors there, once per query, as a ranker does), computes the per-query metrics of :mod:`encoders.relevance.metrics`
and averages them over queries (every system over the same queries), and adds paired-bootstrap CIs
(over queries) of each system's difference to a reference system for Kendall tau and nDCG@k with
exponential gain. :meth:`RelevanceReport.write` writes ``relevance_report.json``,
``relevance_report.md`` and the per-query table ``relevance_per_query.parquet``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from encoders.eval.bootstrap import BootstrapCI, paired_bootstrap_diff
from encoders.relevance.metrics import TIES, query_metrics
from encoders.relevance.pairs import JudgedPairs
from encoders.relevance.scorers import RelevanceEvalError, Scorer

REPORT_JSON = "relevance_report.json"
REPORT_MD = "relevance_report.md"
PER_QUERY_PARQUET = "relevance_per_query.parquet"
METRICS: tuple[str, ...] = ("kendall_tau", "ndcg_exp", "ndcg_linear", "grade_accuracy", "mae")
EVAL_SPLITS: tuple[str, ...] = ("eval", "validation")


def _none_if_nan(obj: object) -> object:
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _none_if_nan(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_none_if_nan(v) for v in obj]
    return obj


def _num(v: object) -> float:
    return float("nan") if v is None else float(v)  # type: ignore[arg-type]


@dataclass
class SystemSummary:
    """One system's metrics averaged over the evaluated queries (``nan`` = not applicable).

    ``delta_tau`` / ``delta_ndcg_exp``: bootstrap CI of this system minus the reference system
    (``None`` for the reference itself or without a reference). ``seconds``: scoring time only.
    """

    name: str
    kendall_tau: float
    ndcg_exp: float
    ndcg_linear: float
    grade_accuracy: float
    mae: float
    pairs_per_s: float
    seconds: float
    predicts_grades: bool
    delta_tau: BootstrapCI | None = None
    delta_ndcg_exp: BootstrapCI | None = None
    description: str = ""

    @classmethod
    def from_dict(cls, d: dict) -> SystemSummary:
        d = dict(d)
        for m in (*METRICS, "pairs_per_s", "seconds"):
            d[m] = _num(d[m])
        for key in ("delta_tau", "delta_ndcg_exp"):
            d[key] = BootstrapCI(**d[key]) if d.get(key) else None
        return cls(**d)


@dataclass
class PerQuery:
    """Per-query values: ``queries (Q,)``, ``n_items (Q,)`` judged pins each, and
    ``values[system][metric] (Q,)`` float64 (``nan`` = not applicable)."""

    queries: list[str]
    n_items: np.ndarray
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def to_table(self):  # -> pyarrow.Table, long format: one row per (system, query)
        import pyarrow as pa

        cols: dict[str, list] = {"system": [], "query": [], "n_items": [], **{m: [] for m in METRICS}}
        for name, vals in self.values.items():
            cols["system"] += [name] * len(self.queries)
            cols["query"] += self.queries
            cols["n_items"] += self.n_items.tolist()
            for m in METRICS:
                cols[m] += [None if not np.isfinite(v) else float(v) for v in vals[m]]
        types = {"system": pa.string(), "query": pa.string(), "n_items": pa.int64(), **{m: pa.float64() for m in METRICS}}
        return pa.table({c: pa.array(v, types[c]) for c, v in cols.items()})


@dataclass
class RelevanceReport:
    """One relevance evaluation: protocol, counts and a :class:`SystemSummary` per system."""

    dataset: str
    split: str
    n_queries: int
    n_pairs: int
    n_skipped_queries: int
    scale: dict[str, object]
    k: int
    ties: str
    seed: int
    bootstrap_reps: int
    max_queries: int | None
    reference: str | None
    systems: list[SystemSummary]
    created_at: str = ""
    per_query: PerQuery | None = field(default=None, repr=False, compare=False)

    def system(self, name: str) -> SystemSummary:
        for s in self.systems:
            if s.name == name:
                return s
        raise KeyError(f"no system {name!r} in the report; have {[s.name for s in self.systems]}")

    def to_dict(self) -> dict[str, object]:
        d = asdict(replace(self, per_query=None))
        del d["per_query"]
        return _none_if_nan(d)  # type: ignore[return-value]

    def to_json(self) -> str:
        """Strict JSON: a metric that does not apply (``nan``) is written as ``null``."""
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict) -> RelevanceReport:
        d = dict(d)
        d["systems"] = [SystemSummary.from_dict(s) for s in d["systems"]]
        return cls(**d)

    @classmethod
    def read_json(cls, path: str | Path) -> RelevanceReport:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_markdown(self) -> str:
        return render_markdown(self)

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write the JSON, the Markdown and (when held) the per-query parquet → their paths."""
        import pyarrow.parquet as pq

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / REPORT_JSON).write_text(self.to_json())
        (out / REPORT_MD).write_text(self.to_markdown())
        paths = [out / REPORT_JSON, out / REPORT_MD]
        if self.per_query is not None:
            pq.write_table(self.per_query.to_table(), out / PER_QUERY_PARQUET)
            paths.append(out / PER_QUERY_PARQUET)
        return paths


def gradable_groups(pairs: JudgedPairs) -> tuple[list[np.ndarray], int]:
    """Row groups of the queries with two or more distinct grades, and how many queries were left out."""
    groups = pairs.query_groups()
    keep = [g for g in groups if np.unique(pairs.grades[g]).size >= 2]
    return keep, len(groups) - len(keep)


def select_queries(
    pairs: JudgedPairs, split: str = "eval", max_queries: int | None = None, seed: int = 0
) -> JudgedPairs:
    """The pairs of ``split``'s queries with two or more distinct grades (a seeded subset of
    ``max_queries`` of them when given), grouped by query in first-seen order."""
    if split not in EVAL_SPLITS:
        raise RelevanceEvalError(f"split must be one of {list(EVAL_SPLITS)}, got {split!r}")
    if max_queries is not None and max_queries < 1:
        raise RelevanceEvalError(f"--max-queries must be a positive integer, got {max_queries}")
    sub = pairs.subset(split)
    groups, _ = gradable_groups(sub)
    if not groups:
        raise RelevanceEvalError(
            f"no {split} query has two or more distinct grades among its judged pins "
            f"({len(sub.query_groups())} {split} queries judged); nothing to rank"
        )
    if max_queries is not None and max_queries < len(groups):
        chosen = np.sort(np.random.default_rng(seed).choice(len(groups), size=max_queries, replace=False))
        groups = [groups[i] for i in chosen]
    return sub.subset(np.concatenate(groups))


def score_pairs(
    scorer: Scorer, pairs: JudgedPairs, groups: list[np.ndarray], name: str = "system",
    chunk_pairs: int = 2048, progress: bool = False,
) -> tuple[np.ndarray, float]:
    """Call ``scorer`` on chunks of whole queries → ``(scores (N,) float64, seconds in scorer calls)``."""
    from tqdm.auto import tqdm

    scores = np.full(len(pairs), np.nan, dtype=np.float64)
    seconds = 0.0
    chunk: list[np.ndarray] = []
    with tqdm(total=len(pairs), desc=f"score {name}", unit="pair", disable=not progress) as bar:
        for gi, g in enumerate(groups):
            chunk.append(g)
            if sum(c.size for c in chunk) < chunk_pairs and gi < len(groups) - 1:
                continue
            idx = np.concatenate(chunk)
            chunk = []
            q = [pairs.queries[i] for i in idx]
            p = [pairs.pin_ids[i] for i in idx]
            t = [pairs.texts[i] for i in idx]
            t0 = time.perf_counter()
            out = scorer(q, p, t)
            seconds += time.perf_counter() - t0
            out = np.asarray(out, dtype=np.float64).reshape(-1)
            if out.shape != (idx.size,):
                raise RelevanceEvalError(f"system {name!r} returned {out.size} scores for {idx.size} pairs")
            if not np.isfinite(out).all():
                bad = int(np.flatnonzero(~np.isfinite(out))[0])
                raise RelevanceEvalError(f"system {name!r} gave a non-finite score to ({q[bad]!r}, {p[bad]!r})")
            scores[idx] = out
            bar.update(idx.size)
    return scores, seconds


def default_reference(names: Collection[str]) -> str | None:
    """``tower`` when evaluated, else ``bm25``, else ``None`` (no CIs)."""
    return next((r for r in ("tower", "bm25") if r in names), None)


def evaluate_systems(
    pairs: JudgedPairs,
    scorers: Mapping[str, Scorer],
    *,
    reference: str | None = None,
    grade_systems: Collection[str] = ("teacher", "student"),
    k: int = 10,
    ties: str = "average",
    seed: int = 0,
    bootstrap_reps: int = 1000,
    chunk_pairs: int = 2048,
    progress: bool = False,
    dataset: str = "",
    split: str = "eval",
    max_queries: int | None = None,
) -> RelevanceReport:
    """Score ``pairs`` with every scorer and summarise → :class:`RelevanceReport` (with ``per_query``).

    Queries of ``pairs`` with fewer than two distinct grades are skipped. A system predicts grades
    (grade accuracy, MAE) when its name is in ``grade_systems`` or its scorer has
    ``predicts_grades = True``. ``reference`` defaults to :func:`default_reference`; ``bootstrap_reps=0``
    skips the CIs.
    """
    if not scorers:
        raise RelevanceEvalError("no systems to evaluate")
    if ties not in TIES:
        raise RelevanceEvalError(f"ties must be one of {list(TIES)}, got {ties!r}")
    if k < 1:
        raise RelevanceEvalError(f"k must be >= 1, got {k}")
    reference = reference if reference is not None else default_reference(scorers)
    if reference is not None and reference not in scorers:
        raise RelevanceEvalError(f"reference system {reference!r} is not evaluated; have {list(scorers)}")
    groups, skipped = gradable_groups(pairs)
    if not groups:
        raise RelevanceEvalError("no query has two or more distinct grades among its judged pins; nothing to rank")
    n_pairs = int(sum(g.size for g in groups))
    per_query = PerQuery([pairs.queries[g[0]] for g in groups], np.asarray([g.size for g in groups], np.int64))
    summaries: list[SystemSummary] = []
    for name, scorer in scorers.items():
        predicts = name in grade_systems or bool(getattr(scorer, "predicts_grades", False))
        if callable(getattr(scorer, "prepare", None)):  # untimed per-query work (stored features)
            scorer.prepare([pairs.queries[g[0]] for g in groups])  # type: ignore[union-attr]
        scores, secs = score_pairs(scorer, pairs, groups, name, chunk_pairs, progress)
        rows = [query_metrics(scores[g], pairs.grades[g], pairs.scale, predicts, k, ties) for g in groups]
        vals = {m: np.asarray([getattr(r, m) for r in rows], dtype=np.float64) for m in METRICS}
        per_query.values[name] = vals
        means = {m: float(np.mean(v)) if np.isfinite(v).all() else float("nan") for m, v in vals.items()}
        summaries.append(SystemSummary(
            name=name, **means, pairs_per_s=n_pairs / secs if secs > 0 else float("inf"),
            seconds=round(secs, 4), predicts_grades=predicts, description=str(getattr(scorer, "description", "")),
        ))
    if reference is not None and bootstrap_reps > 0:
        ref = per_query.values[reference]
        for s in summaries:
            if s.name != reference:
                v = per_query.values[s.name]
                s.delta_tau = paired_bootstrap_diff(v["kendall_tau"], ref["kendall_tau"], None, bootstrap_reps, seed)
                s.delta_ndcg_exp = paired_bootstrap_diff(v["ndcg_exp"], ref["ndcg_exp"], None, bootstrap_reps, seed)
    return RelevanceReport(
        dataset=dataset, split=split, n_queries=len(groups), n_pairs=n_pairs, n_skipped_queries=skipped,
        scale=pairs.scale.to_dict(), k=k, ties=ties, seed=seed, bootstrap_reps=bootstrap_reps,
        max_queries=max_queries, reference=reference, systems=summaries,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), per_query=per_query,
    )


def _fmt(x: float | None, digits: int = 3) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def _fmt_ci(ci: BootstrapCI | None, is_reference: bool) -> str:
    if is_reference:
        return "reference"
    if ci is None:
        return "–"
    return f"{ci.diff:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}]" + (" *" if ci.significant else "")


def _fmt_rate(x: float) -> str:
    return "–" if not np.isfinite(x) else f"{x:,.0f}"


def render_markdown(r: RelevanceReport) -> str:
    """The report as Markdown: the protocol, the system table and notes."""
    lo = float(r.scale["lowest"])  # type: ignore[arg-type]
    levels = r.scale.get("levels")
    scale = f"{lo:g}–{float(r.scale['highest']):g}" + (  # type: ignore[arg-type]
        f", levels {', '.join(f'{x:g}' for x in levels)}" if levels else ", continuous")  # type: ignore[union-attr]
    subset = f" (seeded subset of {r.max_queries}, seed {r.seed})" if r.max_queries else ""
    ref = r.reference or "reference"
    lines = [
        f"# Relevance evaluation — `{r.dataset}`",
        "",
        f"Split `{r.split}`: {r.n_queries:,} queries{subset} with two or more distinct grades, {r.n_pairs:,} judged "
        f"pairs ({r.n_skipped_queries:,} queries with a single grade skipped). Grade scale {scale}. Metrics are "
        f"means over queries; nDCG@{r.k} gain exp = 2^(2·(grade−{lo:g}))−1, linear = grade−{lo:g}; score ties "
        f"ranked {'in their worst order' if r.ties == 'worst' else 'at their mean gain (expected order)'}; "
        "a constant score list has tau 0.",
        "",
        f"| system | Kendall tau | nDCG@{r.k} exp | nDCG@{r.k} linear | grade accuracy | MAE | pairs/s "
        f"| Δ tau vs {ref} [95% CI] | Δ nDCG@{r.k} exp vs {ref} [95% CI] |",
        "|---" * 9 + "|",
    ]
    for s in r.systems:
        is_ref = s.name == r.reference
        cells = [s.name, _fmt(s.kendall_tau), _fmt(s.ndcg_exp), _fmt(s.ndcg_linear), _fmt(s.grade_accuracy),
                 _fmt(s.mae), _fmt_rate(s.pairs_per_s), _fmt_ci(s.delta_tau, is_ref), _fmt_ci(s.delta_ndcg_exp, is_ref)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Δ: paired bootstrap over queries, {r.bootstrap_reps} replicates, seed {r.seed}; * = interval excludes 0. "
        "Grade accuracy (discrete scales) and MAE only for systems that predict grades. pairs/s: scoring calls "
        "only, same run.",
        "",
        "## Notes",
        "",
        *[f"- `{s.name}`: {s.description or '–'} ({s.seconds:.1f} s scoring)" for s in r.systems],
        "",
    ]
    return "\n".join(lines)
