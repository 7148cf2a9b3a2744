"""Pure table shaping for the pages: the metric table, segment table, relevance winners/losers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SIG_COLOUR = {"better": "#d4f4dd", "worse": "#fbd5d5", "": ""}


def _pct(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):
        return "+∞" if x > 0 else "−∞"
    return f"{100 * x:+.2f}%"


def fmt_num(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    return f"{x:.{digits}g}"


def direction(row: pd.Series) -> str:
    """``better`` / ``worse`` for a significant (or guardrail-decided) row, else ``""``."""
    hib = row.get("higher_is_better")
    delta = row.get("rel_delta")
    if row.get("role") == "guardrail":
        passed = row.get("guardrail_passed")
        return "" if passed is None or (isinstance(passed, float) and math.isnan(passed)) else (
            "better" if bool(passed) else "worse")
    if not bool(row.get("significant")) or delta is None or not np.isfinite(delta):
        return ""
    if hib is None or (isinstance(hib, float) and math.isnan(hib)):
        return "better" if delta > 0 else "worse"  # no preferred direction: colour by sign
    return "better" if (delta > 0) == bool(hib) else "worse"


def metric_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Display table: control, treatment, Δ abs [CI], Δ rel [CI], [Δ rel adj. CI], p, p adj, verdict
    (one row per input row), plus the Bayesian columns (:func:`bayes_columns`) when present.

    ``rows``: tidy results rows (``results.parquet``). The ``verdict`` column is ``better``/``worse``/``""``
    and drives the colouring (:func:`style_metric_table`).
    """
    out = pd.DataFrame({
        "metric": rows["metric"].to_numpy(),
        "role": rows["role"].to_numpy(),
        "arm": rows["treatment"].to_numpy(),
        "control": [fmt_num(x) for x in rows["control_value"]],
        "treatment": [fmt_num(x) for x in rows["treatment_value"]],
        "Δ abs [95% CI]": [f"{fmt_num(d, 3)} [{fmt_num(lo, 3)}, {fmt_num(hi, 3)}]" for d, lo, hi in
                           zip(rows["abs_delta"], rows["abs_ci_low"], rows["abs_ci_high"], strict=True)],
        "Δ rel [95% CI]": [f"{_pct(d)} [{_pct(lo)}, {_pct(hi)}]" for d, lo, hi in
                           zip(rows["rel_delta"], rows["rel_ci_low"], rows["rel_ci_high"], strict=True)],
        "p": [fmt_num(x) for x in rows["p_value"]],
        "p adj": [fmt_num(x) for x in rows["p_value_adjusted"]],
        "verdict": [direction(r) for _, r in rows.iterrows()],
    })
    if "rel_ci_adj_low" in rows.columns:
        out.insert(out.columns.get_loc("p"), "Δ rel [adj. CI]", [
            f"[{_pct(lo)}, {_pct(hi)}]" if isinstance(how, str) else "–" for lo, hi, how in
            zip(rows["rel_ci_adj_low"], rows["rel_ci_adj_high"], rows["ci_adjustment"], strict=True)])
    out = out.assign(**bayes_columns(rows))
    if "segment" in rows.columns and (rows["segment"] != "all").any():
        out.insert(1, "segment", rows["segment"].to_numpy())
    if out["arm"].nunique() <= 1:
        out = out.drop(columns="arm")
    return out


def bayes_columns(rows: pd.DataFrame) -> dict[str, list[str]]:
    """``{"P(beat control)": ..., "Bayes Δ [95% CrI]": ...}`` when the results carry the Bayesian
    engine's columns (``abtest analyze --engine bayesian|both``), else ``{}``."""
    if "chance_to_win" not in rows.columns:
        return {}
    rel = rows["bayes_effect"].eq("relative").to_numpy() if "bayes_effect" in rows.columns else [True] * len(rows)
    fmt = [(_pct if r else (lambda x: fmt_num(x, 3))) for r in rel]
    return {
        "P(beat control)": ["–" if not np.isfinite(x) else f"{100 * x:.1f}%" for x in
                            rows["chance_to_win"].astype(float)],
        "Bayes Δ [95% CrI]": [f"{f(d)} [{f(lo)}, {f(hi)}]" for f, d, lo, hi in
                              zip(fmt, rows["bayes_expected"], rows["bayes_ci_low"], rows["bayes_ci_high"], strict=True)],
    }


def style_metric_table(table: pd.DataFrame):  # -> pandas Styler
    """Colour rows green (significantly better / guardrail passed) or red (worse / guardrail not shown)."""
    def colour(row: pd.Series) -> list[str]:
        c = SIG_COLOUR.get(row["verdict"], "")
        return [f"background-color: {c}" if c else ""] * len(row)

    return table.style.apply(colour, axis=1)


def relevance_swings(per_query: pd.DataFrame, control: str, treatment: str, n: int = 5,
                     metric: str = "ndcg_at_k") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``n`` queries the treatment won most and lost most on ``metric`` (paired per query).

    Returns ``(winners, losers)`` with columns ``query, <metric>_control, <metric>_treatment, diff,
    control_results, treatment_results`` (the served pin ids, best first); winners sorted by ``diff``
    descending, losers ascending. Only queries both arms served are compared.
    """
    c = per_query[per_query.arm == control].set_index("query")
    t = per_query[per_query.arm == treatment].set_index("query")
    both = c.index.intersection(t.index)
    df = pd.DataFrame({
        "query": both,
        f"{metric}_control": c.loc[both, metric].to_numpy(dtype=float),
        f"{metric}_treatment": t.loc[both, metric].to_numpy(dtype=float),
    })
    df["diff"] = df[f"{metric}_treatment"] - df[f"{metric}_control"]
    df["control_results"] = [list(c.at[q, "served_pin_ids"]) for q in both]
    df["treatment_results"] = [list(t.at[q, "served_pin_ids"]) for q in both]
    winners = df[df["diff"] > 0].sort_values(["diff", "query"], ascending=[False, True]).head(n)
    losers = df[df["diff"] < 0].sort_values(["diff", "query"], ascending=[True, True]).head(n)
    return winners.reset_index(drop=True), losers.reset_index(drop=True)


def side_by_side(control_ids: list[str], treatment_ids: list[str], texts: dict[str, str] | None = None,
                 grades: dict[str, float] | None = None) -> pd.DataFrame:
    """Rank-aligned table of two result lists (``rank, control, treatment``), with text/grade when known."""
    n = max(len(control_ids), len(treatment_ids))

    n = max(n, 1)

    def cell(ids: list[str], i: int) -> str:
        if not ids and i == 0:
            return "(no results served)"
        if i >= len(ids):
            return ""
        pid = ids[i]
        label = f"{pid} — {texts[pid]}" if texts and pid in texts else pid
        if grades is not None:
            label += f"  (grade {grades[pid]:g})" if pid in grades else "  (unjudged)"
        return label

    return pd.DataFrame({"rank": range(1, n + 1), "control": [cell(control_ids, i) for i in range(n)],
                         "treatment": [cell(treatment_ids, i) for i in range(n)]})


# --- homefeed (an eval_report.json of `searchsage homefeed evaluate`) ------------------------------------------


def _ci_text(ci: dict) -> str:
    return f"{ci['diff']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]"


def homefeed_recall_table(report: dict, corpus: str, slice_: str = "overall") -> pd.DataFrame:
    """One row per system: Recall@k of ``slice_`` (overall or an action) on ``corpus``, in report order."""
    rows = []
    for name, per in report["systems"].items():
        rec = per[corpus][slice_]
        rows.append({"system": name, **{f"Recall@{k}": round(float(rec[str(k)]), 4) for k in report["ks"]}})
    return pd.DataFrame(rows)


def homefeed_comparison_table(report: dict, corpus: str | None = None) -> pd.DataFrame:
    """Tower minus each baseline / ablation (paired bootstrap 95% CI over users), one row per comparison;
    ``Δ R@k significant`` says whether the CI of the first k excludes 0."""
    k0 = str(report["ks"][0])
    rows = []
    for c in report["comparisons"]:
        if corpus is not None and c["corpus"] != corpus:
            continue
        ci0 = c["ci"][k0]
        rows.append({"tower minus": c["b"], "corpus": c["corpus"],
                     **{f"Δ Recall@{k} [95% CI]": _ci_text(c["ci"][str(k)]) for k in report["ks"]},
                     f"Δ R@{k0} significant": "yes" if ci0["low"] > 0 or ci0["high"] < 0 else "no"})
    return pd.DataFrame(rows)


def homefeed_corpus_table(report: dict) -> pd.DataFrame:
    """The serving-corpus effect: the same system on corpus a minus corpus b, with CIs."""
    return pd.DataFrame([{"system": c["system"], "a − b": f"{c['a']} − {c['b']}",
                          **{f"Δ Recall@{k} [95% CI]": _ci_text(c["ci"][str(k)]) for k in report["ks"]}}
                         for c in report["corpus_effect"]])
