"""Relevance page: the four estimates with model labels (PPI first), then nDCG@K and P@8 per arm against
judgments (unjudged = 0), the paired difference, and the queries that moved most."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.loaders import DashboardDataError, Experiment, load_pins, ppi_estimates_table
from dashboard.tables import fmt_num, relevance_swings, side_by_side
from dashboard.views.common import picked_experiment, settings, show_chart


@st.cache_data(show_spinner=False)
def _pin_texts(path: str, mtime: float) -> dict[str, str]:
    pins = load_pins(path)
    return dict(zip(pins.ids, pins.texts, strict=True))


@st.cache_data(show_spinner=False)
def _grades(path: str, mtime: float) -> dict[str, dict[str, float]]:
    df = pd.read_parquet(path, columns=["query", "pin_id", "grade"])
    out: dict[str, dict[str, float]] = {}
    for q, p, g in df.itertuples(index=False):
        out.setdefault(str(q), {})[str(p)] = float(g)
    return out


def _optional_lookups(source: str | None) -> tuple[dict[str, str] | None, dict[str, dict[str, float]] | None, list[str]]:
    """Pin texts (settings.pins) and judgments (next to the analysed logs), when they can be read."""
    notes: list[str] = []
    texts = grades = None
    pins = settings().pins
    if pins is not None:
        try:
            texts = _pin_texts(str(pins), Path(pins).stat().st_mtime)
        except (DashboardDataError, OSError) as exc:
            notes.append(f"pin texts unavailable: {exc}")
    judg = Path(source) / "judgments.parquet" if source else None
    if judg is not None and judg.is_file():
        try:
            grades = _grades(str(judg), judg.stat().st_mtime)
        except Exception as exc:  # malformed parquet: show ids only
            notes.append(f"judgments unreadable ({judg}): {exc}")
    return texts, grades, notes


def _fmt_ci(est: float, lo: float, hi: float) -> str:
    return f"{est:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def _render_ppi(exp: Experiment) -> None:
    """The four estimates (PPI, judged only, model only, unjudged = 0), judged fraction, model agreement."""
    ppi = exp.relevance_ppi or {}
    st.subheader("Relevance with model labels: four estimates")
    if ppi.get("mode") != "ppi":
        st.warning("Model-only result: no judged query (every shown result of both arms judged), so no PPI — "
                   "the model-only numbers carry the model's bias.")
    judged, frac = ppi.get("judged_queries", {}), ppi.get("judged_fraction", {})
    cols = st.columns(max(len(frac), 1))
    for col, (arm, f) in zip(cols, frac.items(), strict=False):
        col.metric(f"Judged queries · {arm}", f"{100 * float(f):.1f}%", help=f"{judged.get(arm)} queries; "
                   f"judged = {ppi.get('judged', '')}")
    table = ppi_estimates_table(ppi)
    table["estimator"] = table["estimator"].map(lambda e: charts.ESTIMATOR_LABELS.get(e, e))
    delta = table[table.scope == "delta"]
    if not delta.empty:
        st.markdown("**Paired difference treatment − control** (PPI is the decision; 95% intervals)")
        st.dataframe(pd.DataFrame({
            "metric": delta.metric, "arm": delta.arm, "estimator": delta.estimator,
            "Δ [95% CI]": [_fmt_ci(*r) for r in delta[["estimate", "ci_low", "ci_high"]].itertuples(index=False)],
            "p": delta.p_value.map(fmt_num), "judged queries": delta.n_labelled}), hide_index=True, width="stretch")
        raw = ppi_estimates_table(ppi)
        for arm in raw[raw.scope == "delta"].arm.unique():
            show_chart(charts.estimates_forest(raw[(raw.scope == "delta") & (raw.arm == arm)],
                                               f"{arm} − {exp.control}, 95% CI"), stretch=False)
    per_arm = table[table.scope == "arm"]
    if not per_arm.empty:
        with st.expander("Each arm's relevance (four estimates)"):
            st.dataframe(pd.DataFrame({
                "metric": per_arm.metric, "arm": per_arm.arm, "estimator": per_arm.estimator,
                "estimate [95% CI]": [_fmt_ci(*r) for r in
                                      per_arm[["estimate", "ci_low", "ci_high"]].itertuples(index=False)],
                "judged": per_arm.n_labelled, "model-only queries": per_arm.n_unlabelled}),
                hide_index=True, width="stretch")
    agree = ppi.get("agreement", {})
    grades = agree.get("grades") or {}
    st.markdown("**Model vs human judges** (judged queries)")
    corr = [{"metric": m, "pearson": v.get("pearson"), "spearman": v.get("spearman"), "queries × arms": v.get("n")}
            for m, v in (agree.get("per_query") or {}).items()]
    c1, c2 = st.columns(2)
    if corr:
        c1.dataframe(pd.DataFrame(corr), hide_index=True, width="stretch")
    if grades.get("n"):
        c2.metric("Grade MAE", f"{grades['mae']:.3f}", help=f"over {grades['n']} judged results")
        c2.metric("Exact grade (rounded)", f"{100 * grades['exact_share']:.1f}%")
    if grades.get("calibration"):
        lo, hi = float(ppi.get("min_grade", 0.0)), float(ppi.get("max_grade", 1.0))
        show_chart(charts.calibration_chart(grades["calibration"], lo, hi), stretch=False)
    conf = grades.get("confusion")
    if conf:
        labels = [f"{g:g}" for g in conf["grades"]]
        st.caption("Confusion: rows = human grade, columns = model grade rounded to the scale")
        st.dataframe(pd.DataFrame(conf["counts"], index=[f"human {g}" for g in labels],
                                  columns=[f"model {g}" for g in labels]), width="content")
    for n in ppi.get("notes") or []:
        st.caption(n)


def render() -> None:
    st.title("Relevance")
    exp = picked_experiment()
    if exp is None:
        return
    if exp.relevance_ppi is not None:
        _render_ppi(exp)
    if exp.relevance is None or exp.relevance_per_query is None:
        msg = "No relevance results against judgments for this experiment. " if exp.relevance_ppi is not None else \
            "No relevance results for this experiment. "
        st.warning(msg + " ".join(n for n in exp.notes if "relevance" in n and "relevance_ppi" not in n))
        return
    if exp.relevance_ppi is not None:
        st.subheader("Against judgments only (unjudged results = grade 0)")
    rel, per_query = exp.relevance, exp.relevance_per_query
    k, p_k = int(rel.get("k", 10)), int(rel.get("p_k", 8))
    st.caption(f"Judged queries per arm: {rel.get('queries_per_arm')}; unjudged results {rel.get('unjudged', '')}; "
               f"P@{p_k} counts grade ≥ {rel.get('relevant_grade')}.")
    cols = st.columns(2 * len(rel["mean"]))
    i = 0
    for arm, m in rel["mean"].items():
        cols[i].metric(f"nDCG@{k} · {arm}", f"{m['ndcg_at_k']:.3f}")
        cols[i + 1].metric(f"P@{p_k} · {arm}", f"{m['precision_at_k']:.3f}")
        i += 2
    show_chart(charts.relevance_bars(rel["mean"], k, p_k), stretch=False)
    comps = rel["comparisons"]
    if comps:
        st.subheader("Paired difference (treatment − control over the same queries)")
        st.dataframe(pd.DataFrame([{
            "metric": c["metric"], "arm": c["treatment"], "control": c["control_value"], "treatment": c["treatment_value"],
            "Δ [95% CI]": f"{c['abs_delta']:+.3f} [{c['abs_ci'][0]:+.3f}, {c['abs_ci'][1]:+.3f}]",
            "p": fmt_num(c["p_value"]), "significant": bool(c.get("significant")), "queries": c.get("n_control")}
            for c in comps]), hide_index=True, width="stretch")
        show_chart(charts.paired_diff_chart(comps))
    control = exp.control
    treatments = [a for a in per_query.arm.unique() if a != control]
    if not treatments:
        return
    arm = st.selectbox("Treatment arm", treatments, key="rel_arm") if len(treatments) > 1 else treatments[0]
    show_chart(charts.query_scatter(per_query, control, arm))
    winners, losers = relevance_swings(per_query, control, arm, n=5)
    shown = ["query", "ndcg_at_k_control", "ndcg_at_k_treatment", "diff"]
    c1, c2 = st.columns(2)
    c1.subheader("Queries won most")
    c1.dataframe(winners[shown], hide_index=True, width="stretch")
    c2.subheader("Queries lost most")
    c2.dataframe(losers[shown], hide_index=True, width="stretch")
    moved = pd.concat([winners, losers], ignore_index=True)
    if moved.empty:
        st.info("No query changed its nDCG between the arms.")
        return
    texts, grades, notes = _optional_lookups(exp.summary.get("source"))
    for n in notes:
        st.caption(n)
    q = st.selectbox("Results side by side for", moved["query"].tolist(), key="rel_query")
    row = moved[moved["query"] == q].iloc[0]
    st.dataframe(side_by_side(row["control_results"], row["treatment_results"], texts,
                              None if grades is None else grades.get(q, {})),
                 hide_index=True, width="stretch")
