"""Model card: the bundle in use (manifest) and its training report (Recall@k, nDCG, P@k, baselines)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard import charts
from dashboard.loaders import DashboardDataError, load_eval_report, read_manifest
from dashboard.views.common import settings, show_chart


def _f(x: object) -> str:
    return "–" if x is None else f"{float(x):.3f}"  # type: ignore[arg-type]


def render() -> None:
    st.title("Model card")
    cfg = settings()
    if cfg.bundle is None:
        st.warning("No bundle configured: start the dashboard with --bundle BUNDLE_DIR (from `searchsage export`).")
        return
    st.caption(f"Bundle `{cfg.bundle}`")
    try:
        manifest = read_manifest(cfg.bundle)
        st.dataframe(pd.DataFrame([{"field": k, "value": str(manifest.get(k))} for k in
                                   ("model_version", "kind", "dim", "max_length", "pooling", "normalize", "base_model")
                                   if k in manifest]), hide_index=True)
        if "parity" in manifest:
            with st.expander("ONNX parity checks"):
                st.json(manifest["parity"])
    except DashboardDataError as exc:
        st.error(f"Bundle manifest unreadable: {exc}")
    try:
        report = load_eval_report(cfg.bundle)
    except DashboardDataError as exc:
        st.warning(f"No training report for this bundle: {exc}")
        return
    ks = report.get("ks") or sorted({int(k) for s in report["systems"] for k in s["recall"]})
    nd_k, p_k = report.get("ndcg_k", 10), report.get("precision_k", 8)
    best = report.get("best_baseline")
    st.subheader("Offline evaluation")
    st.caption(f"Dataset `{report.get('dataset')}` · {report.get('n_eval_queries', '?')} held-out queries, "
               f"{report.get('n_pairs', '?')} (query, pin) pairs · index {report.get('index_size', '?')} pins · "
               f"{report.get('n_judged_queries', '?')} judged queries · best baseline: {best}")
    rows = []
    for s in report["systems"]:
        row = {"system": s["name"] + (" (best baseline)" if s["name"] == best else "")}
        for k in ks:
            row[f"Recall@{k}"] = _f(s["recall"].get(str(k), s["recall"].get(k)))
        row[f"nDCG@{nd_k}"] = _f(s.get("ndcg"))
        row[f"P@{p_k}"] = _f(s.get("precision"))
        d = s.get("delta")
        row[f"Δ Recall@{ks[0]} vs best [95% CI]"] = (
            f"{d['diff']:+.3f} [{d['low']:+.3f}, {d['high']:+.3f}]" if isinstance(d, dict) and "diff" in d else "–")
        rows.append(row)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    show_chart(charts.recall_chart(report), stretch=False)
    st.caption(f"Report created {report.get('created_at', '?')}; written by `searchsage evaluate`.")
