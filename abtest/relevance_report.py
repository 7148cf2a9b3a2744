"""Relevance tables of an experiment: what each arm served, scored against human judgments.

Inputs: ``served.parquet`` (``arm, query, pin_ids: list<string>`` — each arm's ranked results per
query; the simulator writes it, production exports it from the serving log) and
``judgments.parquet`` (``query, pin_id, grade`` as in :mod:`encoders.data.schema`). Per-query
nDCG@k and P@p_k come from :mod:`abtest.relevance` (unjudged served results count as grade 0; the
ideal DCG uses every judged item of the query); each treatment arm is compared with the control
by a paired test over the queries both served.

With ``model_labels.parquet`` (a relevance model's grade for every served result, same schema and
grade scale as the judgments) :func:`ppi_from_files` adds the four estimates of
:mod:`abtest.relevance_ppi` (PPI, judged-only, model-only, unjudged = 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from abtest.relevance import compare_relevance, query_relevance
from abtest.relevance_ppi import PPIRelevance, ppi_relevance
from abtest.simulate.rankings import read_served
from encoders.data.schema import JUDGMENTS, DataValidationError, read_table


@dataclass
class RelevanceReport:
    """``per_query``: one row per (query, arm); ``summary``: the JSON-ready paired comparison."""

    per_query: pd.DataFrame
    summary: dict


def load_judgments(path: str | Path) -> dict[str, dict[str, float]]:
    """``{query: {pin_id: grade}}`` from a validated judgments parquet."""
    t = read_table(path, JUDGMENTS)
    out: dict[str, dict[str, float]] = {}
    for q, p, g in zip(*(t.column(c).to_pylist() for c in ("query", "pin_id", "grade")), strict=True):
        out.setdefault(q, {})[p] = float(g)
    return out


def relevance_report(
    served: Mapping[str, Mapping[str, list[str]]], judgments: Mapping[str, Mapping[str, float]], control: str,
    k: int = 10, p_k: int = 8, relevant_grade: float | None = None, alpha: float = 0.05,
) -> RelevanceReport:
    """Score every arm's served lists and compare each treatment arm with ``control`` (paired t).

    ``relevant_grade`` (P@k threshold) defaults to the upper half of the grade scale:
    ``min + (max - min) / 2`` (e.g. 2 on a 1–3 scale); ``min_grade`` of nDCG is the scale's minimum.
    """
    grades = [g for qj in judgments.values() for g in qj.values()]
    lo, hi = (min(grades), max(grades)) if grades else (0.0, 1.0)
    rel_grade = lo + (hi - lo) / 2 if relevant_grade is None else relevant_grade
    scores = {arm: query_relevance(s, judgments, k=k, p_k=p_k, relevant_grade=rel_grade, min_grade=lo)
              for arm, s in served.items()}  # fmt: skip
    rows = []
    for arm, qr in scores.items():
        for i, q in enumerate(qr.queries):
            rows.append({"query": q, "arm": arm, "ndcg_at_k": float(qr.ndcg[i]), "precision_at_k": float(qr.precision[i]),
                         "k": k, "p_k": p_k, "served_pin_ids": list(served[arm][q])[:max(k, p_k)]})
    comparisons = []
    for arm in served:
        if arm == control or control not in scores:
            continue
        for res in compare_relevance(scores[control], scores[arm], alpha=alpha, control_name=control,
                                     treatment_name=arm):
            comparisons.append(res.to_dict())
    summary = {
        "k": k, "p_k": p_k, "relevant_grade": rel_grade, "min_grade": lo,
        "unjudged": "counted as grade 0 (not relevant)",
        "queries_per_arm": {arm: len(qr.queries) for arm, qr in scores.items()},
        "mean": {arm: {"ndcg_at_k": float(pd.Series(qr.ndcg).mean()), "precision_at_k": float(qr.precision.mean())}
                 for arm, qr in scores.items() if len(qr.queries)},
        "comparisons": comparisons,
    }
    return RelevanceReport(pd.DataFrame(rows, columns=["query", "arm", "ndcg_at_k", "precision_at_k", "k", "p_k",
                                                       "served_pin_ids"]), summary)


def relevance_from_files(served_path: str | Path, judgments_path: str | Path, control: str, **kw) -> RelevanceReport:
    """:func:`relevance_report` over ``served.parquet`` and ``judgments.parquet``."""
    return relevance_report(read_served(served_path), load_judgments(judgments_path), control, **kw)


def load_model_labels(path: str | Path, lo: float | None = None, hi: float | None = None) -> dict[str, dict[str, float]]:
    """``{query: {pin_id: grade}}`` from a model-labels parquet (judgments schema).

    With ``lo``/``hi`` (the judgments' grade scale) a grade outside ``[lo, hi]`` is an error naming the row.
    """
    t = read_table(path, JUDGMENTS)
    grades = t.column("grade").to_numpy()
    if lo is not None and hi is not None:
        bad = np.flatnonzero((grades < lo - 1e-9) | (grades > hi + 1e-9))
        if bad.size:
            raise DataValidationError(path, f"model grade {grades[bad[0]]:g} is outside the judgments' grade scale "
                                      f"[{lo:g}, {hi:g}]", column="grade", row=int(bad[0]))
    out: dict[str, dict[str, float]] = {}
    for q, p, g in zip(t.column("query").to_pylist(), t.column("pin_id").to_pylist(), grades.tolist(), strict=True):
        out.setdefault(q, {})[p] = float(g)
    return out


def ppi_from_files(served_path: str | Path, judgments_path: str | Path | None, model_labels_path: str | Path,
                   control: str, **kw) -> PPIRelevance:
    """:func:`abtest.relevance_ppi.ppi_relevance` over the files (``judgments_path=None``: model-only)."""
    judgments = load_judgments(judgments_path) if judgments_path is not None else None
    grades = [g for qj in (judgments or {}).values() for g in qj.values()]
    lo, hi = (min(grades), max(grades)) if grades else (None, None)
    labels = load_model_labels(model_labels_path, lo, hi)
    return ppi_relevance(read_served(served_path), labels, judgments, control, **kw)
