"""Relevance of each arm with model labels + a judged sample: four estimates side by side.

Inputs: what each arm served (``{arm: {query: [pin_id]}}``), **model labels** (a relevance model's
grade for every served result, on the judgments' grade scale) and **human judgments**. A query is
*judged* in an arm when every result the arm showed in the metrics' depth (``max(k, p_k)``) has a
human grade; the PPI design judges ALL shown results of both arms for a random sample of queries.

Per query and arm: nDCG@k / P@p_k from human grades (judged queries), from model grades (all
queries), and today's number (unjudged served result = grade 0, :func:`abtest.relevance.query_relevance`).
In the first two an undefined nDCG counts as 0 (see :class:`abtest.relevance.GradedMetrics`).
Estimates of each arm's mean and of the paired delta treatment − control:

* ``ppi`` — prediction-powered (PPI++, :mod:`abtest.stats.ppi`): the decision;
* ``judged_only`` — the judged sample alone (paired t);
* ``model_only`` — model labels over all queries (paired t; biased as far as the model is);
* ``unjudged_zero`` — today's number (judged grades, unjudged = 0; paired t; needs judgments).

Without any judged query the result is ``mode = "model-only"`` (no PPI row), never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

from abtest.relevance import compare_relevance, graded_query_metrics, paired_test, query_relevance
from abtest.stats.errors import StatsInputError
from abtest.stats.ppi import ppi_mean, ppi_paired_delta

ESTIMATORS: tuple[str, ...] = ("ppi", "judged_only", "model_only", "unjudged_zero")
METRICS: tuple[str, ...] = ("ndcg_at_k", "precision_at_k")
_LEGACY = {"ndcg_at_k": "ndcg", "precision_at_k": "precision"}  # QueryRelevance fields


@dataclass
class PPIRelevance:
    """``per_query``: one row per (query, arm); ``summary``: the JSON-ready estimates and agreement."""

    per_query: pd.DataFrame
    summary: dict
    notes: list[str] = field(default_factory=list)


def grade_scale(judgments: Mapping[str, Mapping[str, float]] | None,
                model_labels: Mapping[str, Mapping[str, float]]) -> tuple[float, float, list[float]]:
    """``(min, max, grades)`` of the scale: the judgments' (else the model labels' range, no grade list)."""
    src = judgments if judgments else model_labels
    vals = [g for qj in src.values() for g in qj.values()]
    if not vals:
        return 0.0, 1.0, []
    return min(vals), max(vals), sorted(set(vals)) if judgments else []


def _arm_metrics(served, grades, queries, **kw) -> dict[str, np.ndarray]:
    m = graded_query_metrics(served, grades, queries, **kw)
    return {"ndcg_at_k": m.ndcg, "precision_at_k": m.precision, "complete": m.complete, "missing": m.missing}


def _mean_ci(x: np.ndarray, alpha: float) -> dict:
    """Mean of ``x (n,)`` with a t interval (ddof = 1)."""
    x = x[np.isfinite(x)]
    n = x.size
    if n == 0:
        return {"estimate": math.nan, "se": math.nan, "ci_low": math.nan, "ci_high": math.nan, "n_labelled": 0}
    se = float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    q = float(sps.t.ppf(1 - alpha / 2, n - 1)) if n > 1 else math.nan
    m = float(x.mean())
    return {"estimate": m, "se": se, "ci_low": m - q * se, "ci_high": m + q * se, "n_labelled": n}


def _corr(a: np.ndarray, b: np.ndarray) -> dict:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return {"pearson": math.nan, "spearman": math.nan, "n": int(a.size)}
    return {"pearson": float(np.corrcoef(a, b)[0, 1]), "spearman": float(sps.spearmanr(a, b).statistic),
            "n": int(a.size)}


def grade_agreement(judgments: Mapping[str, Mapping[str, float]], model_labels: Mapping[str, Mapping[str, float]],
                    scale: Sequence[float], lo: float, hi: float, bins: int = 8) -> dict:
    """Per-result agreement over the (query, pin) pairs graded by both: MAE, exact share, confusion, calibration.

    The model grade is rounded to the nearest grade of ``scale`` for the exact share and the confusion
    table (rows: human grade, columns: rounded model grade). Calibration: ``bins`` equal-width bins of
    the model grade over ``[lo, hi]`` with the mean human grade of each.
    """
    h, m = [], []
    for q, qj in judgments.items():
        ml = model_labels.get(q)
        if ml:
            for p, g in qj.items():
                if p in ml:
                    h.append(g)
                    m.append(ml[p])
    h_arr, m_arr = np.asarray(h, dtype=np.float64), np.asarray(m, dtype=np.float64)
    out: dict = {"n": int(h_arr.size), "mae": math.nan, "exact_share": math.nan, "confusion": None, "calibration": []}
    if not h_arr.size:
        return out
    out["mae"] = float(np.abs(h_arr - m_arr).mean())
    grades = np.asarray(sorted(scale) if scale else sorted(set(h)), dtype=np.float64)
    rounded = grades[np.abs(m_arr[:, None] - grades[None, :]).argmin(axis=1)]
    out["exact_share"] = float(np.mean(rounded == h_arr))
    counts = [[int(np.sum((h_arr == gh) & (rounded == gm))) for gm in grades] for gh in grades]
    out["confusion"] = {"grades": grades.tolist(), "counts": counts}
    edges = np.linspace(lo, hi if hi > lo else lo + 1.0, bins + 1)
    idx = np.clip(np.searchsorted(edges, m_arr, side="right") - 1, 0, bins - 1)
    out["calibration"] = [{"bin_low": float(edges[b]), "bin_high": float(edges[b + 1]), "n": int(np.sum(idx == b)),
                           "model_mean": float(m_arr[idx == b].mean()), "human_mean": float(h_arr[idx == b].mean())}
                          for b in range(bins) if np.any(idx == b)]
    return out


def _result_row(estimator: str, res, **extra) -> dict:
    return {"estimator": estimator, "decision": estimator == "ppi", **res.to_dict(), **extra}


def ppi_relevance(
    served: Mapping[str, Mapping[str, list[str]]],
    model_labels: Mapping[str, Mapping[str, float]],
    judgments: Mapping[str, Mapping[str, float]] | None,
    control: str,
    *,
    k: int = 10,
    p_k: int = 8,
    relevant_grade: float | None = None,
    alpha: float = 0.05,
) -> PPIRelevance:
    """The four estimates of every arm's nDCG@k / P@p_k and of each treatment − ``control`` delta.

    ``judgments=None`` (or no judged query) gives ``mode = "model-only"``. ``relevant_grade`` defaults
    to the middle of the grade scale, as in :func:`abtest.relevance_report.relevance_report`.
    """
    judg = judgments or {}
    lo, hi, scale = grade_scale(judgments, model_labels)
    rel = lo + (hi - lo) / 2 if relevant_grade is None else relevant_grade
    kw = {"k": k, "p_k": p_k, "relevant_grade": rel, "min_grade": lo}
    names = {"ndcg_at_k": f"ndcg@{k}", "precision_at_k": f"p@{p_k}"}
    notes: list[str] = []
    rows, arm_rows, comparisons, per_arm = [], [], [], {}
    for arm, s in served.items():
        qs = list(s)
        hm, mm = _arm_metrics(s, judg, qs, **kw), _arm_metrics(s, model_labels, qs, **kw)
        legacy = query_relevance(s, judg, k=k, p_k=p_k, relevant_grade=rel, min_grade=lo) if judg else None
        leg = {m: legacy.as_dict(_LEGACY[m]) if legacy else {} for m in METRICS}
        judged = hm["complete"]
        per_arm[arm] = (qs, hm, mm, leg)
        if int(mm["missing"].sum()):
            notes.append(f"arm {arm}: {int(mm['missing'].sum())} served results have no model label (lowest grade)")
        for i, q in enumerate(qs):
            rows.append({"query": q, "arm": arm, "judged": bool(judged[i]),
                         **{f"{m}_human": float(hm[m][i]) if judged[i] else math.nan for m in METRICS},
                         **{f"{m}_model": float(mm[m][i]) for m in METRICS},
                         **{f"{m}_unjudged0": leg[m].get(q, math.nan) for m in METRICS}})
        for m in METRICS:
            y = np.where(judged, hm[m], np.nan)
            base = {"metric": names[m], "arm": arm}
            if judged.sum() >= 2:
                r = ppi_mean(y[judged], mm[m][judged], mm[m][~judged], alpha=alpha, metric=names[m])
                arm_rows.append({**base, "estimator": "ppi", "estimate": r.estimate, "se": r.se, "ci_low": r.ci[0],
                                 "ci_high": r.ci[1], "n_labelled": r.n_labelled, "n_unlabelled": r.n_unlabelled,
                                 "lam": r.lam})
                arm_rows.append({**base, "estimator": "judged_only", **_mean_ci(y, alpha)})
            arm_rows.append({**base, "estimator": "model_only", **_mean_ci(mm[m], alpha), "n_unlabelled": 0})
            if legacy is not None:
                arm_rows.append({**base, "estimator": "unjudged_zero", **_mean_ci(getattr(legacy, _LEGACY[m]), alpha)})
    n_judged = {arm: int(v[1]["complete"].sum()) for arm, v in per_arm.items()}
    partial = {arm: int(((v[1]["missing"] > 0) & np.isfinite(v[1]["ndcg_at_k"])).sum()) for arm, v in per_arm.items()}
    agreement: dict = {"per_query": {}, "delta": {}}
    for arm in served:
        if arm == control or control not in per_arm:
            continue
        (qc, hc, mc, _), (qt, ht, mt, _) = per_arm[control], per_arm[arm]
        qt_set = set(qt)
        common = [q for q in qc if q in qt_set]
        ic, it = {q: i for i, q in enumerate(qc)}, {q: i for i, q in enumerate(qt)}
        ci, ti = np.array([ic[q] for q in common], dtype=np.int64), np.array([it[q] for q in common], dtype=np.int64)
        both = hc["complete"][ci] & ht["complete"][ti]
        for m in METRICS:
            f_c, f_t = mc[m][ci], mt[m][ti]
            y_c, y_t = np.where(both, hc[m][ci], np.nan), np.where(both, ht[m][ti], np.nan)
            ctx = {"metric": names[m], "control_name": control, "treatment_name": arm, "alpha": alpha}
            if both.sum() >= 2:
                comparisons.append(_result_row("ppi", ppi_paired_delta(f_c, f_t, y_c, y_t, alpha=alpha,
                                   metric=names[m], control_name=control, treatment_name=arm)))
                comparisons.append(_result_row("judged_only", paired_test(y_c[both], y_t[both], **ctx)))
                agreement["delta"].setdefault(arm, {})[names[m]] = _corr(y_t - y_c, f_t - f_c)
            try:
                comparisons.append(_result_row("model_only", paired_test(f_c, f_t, **ctx)))
            except StatsInputError as exc:
                notes.append(f"model-only {names[m]} {arm}: {exc}")
        if judg:
            try:
                legacy = compare_relevance(
                    query_relevance(served[control], judg, k=k, p_k=p_k, relevant_grade=rel, min_grade=lo),
                    query_relevance(served[arm], judg, k=k, p_k=p_k, relevant_grade=rel, min_grade=lo),
                    alpha=alpha, control_name=control, treatment_name=arm)
                comparisons += [_result_row("unjudged_zero", r) for r in legacy]
            except StatsInputError as exc:
                notes.append(f"unjudged = 0 comparison {arm}: {exc}")
    pq_df = pd.DataFrame(rows, columns=["query", "arm", "judged", *(f"{m}_{s}" for s in ("human", "model", "unjudged0")
                                                                      for m in METRICS)])
    judged_rows = pq_df[pq_df.judged]
    for m in METRICS:
        agreement["per_query"][names[m]] = _corr(judged_rows[f"{m}_human"].to_numpy(dtype=float),
                                                 judged_rows[f"{m}_model"].to_numpy(dtype=float))
    agreement["grades"] = grade_agreement(judg, model_labels, scale, lo, hi)
    has_ppi = any(c["estimator"] == "ppi" for c in comparisons) or any(r["estimator"] == "ppi" for r in arm_rows)
    if not has_ppi:
        notes.append("no judged query (every shown result of both arms judged): model-only estimates, no PPI")
    summary = {
        "mode": "ppi" if has_ppi else "model-only", "k": k, "p_k": p_k, "relevant_grade": rel, "min_grade": lo,
        "max_grade": hi, "grades": scale, "control": control, "alpha": alpha, "estimators": list(ESTIMATORS),
        "judged": "every result the arm showed in the first max(k, p_k) positions has a human grade",
        "queries_per_arm": {arm: len(v[0]) for arm, v in per_arm.items()},
        "judged_queries": n_judged,
        "judged_fraction": {arm: n_judged[arm] / max(len(per_arm[arm][0]), 1) for arm in per_arm},
        "partially_judged_queries": partial,
        "arms": arm_rows, "comparisons": comparisons, "agreement": agreement, "notes": notes,
    }
    return PPIRelevance(pq_df, summary, notes)
