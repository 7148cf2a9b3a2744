"""Homefeed: the user tower's offline evaluation (``searchsage homefeed evaluate``): Recall@k per system on
each serving corpus, the tower minus each baseline and ablation with paired CIs, the corpus effect and
conditional retrieval."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.loaders import DashboardDataError, load_homefeed_report
from dashboard.tables import homefeed_comparison_table, homefeed_corpus_table, homefeed_recall_table
from dashboard.views.common import settings, show_chart


def render() -> None:
    st.title("Homefeed retrieval")
    cfg = settings()
    if cfg.homefeed is None:
        st.warning("No homefeed evaluation configured: start the dashboard with --homefeed DIR (the --out of "
                   "`searchsage homefeed evaluate`; the demo writes runs/demo/homefeed/run/eval).")
        return
    try:
        report = load_homefeed_report(cfg.homefeed)
    except DashboardDataError as exc:
        st.error(f"Homefeed report unreadable: {exc}")
        return
    pairs = ", ".join(f"{s} {n:,}" for s, n in report["pairs"].items())
    st.caption(f"Model `{report['model_version']}` · split {report.get('split_iso', '?')} · {report['users']:,} eval "
               f"users · (user, new pin) pairs: {pairs} · time-decay half-life {report.get('half_life_days', '?')} "
               "days · Recall@k of post-split engagements on pins new to the user")
    corpora = list(report["corpora"])
    slices = list(report["pairs"])
    left, right = st.columns(2)
    corpus = left.selectbox("Corpus (pins in the index)", corpora, key="hf_corpus",
                            format_func=lambda c: f"{c} ({report['corpora'][c]['size']:,} pins)")
    slice_ = right.selectbox("Engagements", slices, key="hf_slice")
    coverage = report["corpora"][corpus].get("coverage", {}).get(slice_)
    if coverage is not None:
        st.caption(f"Share of the target pairs whose pin is in this corpus: {coverage:.3f}")
    st.subheader("Recall@k per system")
    table = homefeed_recall_table(report, corpus, slice_)
    st.dataframe(table, hide_index=True, width="stretch")
    show_chart(charts.homefeed_recall_chart(table), stretch=False)

    st.subheader("Tower minus each baseline and ablation")
    st.caption("Overall recall, paired bootstrap over users, 95% CI; an ablation whose CI includes 0 has no "
               "measurable effect.")
    st.dataframe(homefeed_comparison_table(report, corpus), hide_index=True, width="stretch")
    with st.expander("Every corpus"):
        st.dataframe(homefeed_comparison_table(report), hide_index=True, width="stretch")

    st.subheader("Serving corpus effect")
    st.dataframe(homefeed_corpus_table(report), hide_index=True, width="stretch")
    cond = report.get("conditional")
    if cond:
        st.subheader("Conditional retrieval")
        st.caption(f"{cond['requests']:,} (user, interest) requests, {cond['pairs']:,} pairs, corpus `{cond['corpus']}`")
        ks = report["ks"]
        st.dataframe(pd.DataFrame([
            {"": "unconditioned", **{f"Recall@{k}": f"{cond['unconditional'][str(k)]:.4f}" for k in ks}},
            {"": "conditioned on the pin's interest", **{f"Recall@{k}": f"{cond['conditional'][str(k)]:.4f}" for k in ks}},
            {"": "Δ [95% CI]", **{f"Recall@{k}": "{diff:+.4f} [{low:+.4f}, {high:+.4f}]".format(**cond["comparison"][str(k)])
                                  for k in ks}},
        ]), hide_index=True, width="stretch")
    st.caption(f"Report {cfg.homefeed}; written by `searchsage homefeed evaluate`.")
