"""Embedding explorer: type a query → live ONNX embedding → nearest pins (faiss) + online-store check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from dashboard import charts
from dashboard.views.common import settings, show_chart

NOT_CONFIGURED = "online store not configured"


@st.cache_resource(show_spinner="Loading the bundle and indexing pins…")
def _searcher(bundle: str, pins: str, stamp: tuple[float, float]):  # -> PinSearch
    from dashboard.explorer import PinSearch

    return PinSearch(bundle, pins)


def _mtime(p: Path) -> float:
    return p.stat().st_mtime if p.exists() else 0.0


def render() -> None:
    from dashboard.explorer import online_lookup
    from dashboard.loaders import DashboardDataError
    from encoders.runtime.manifest import BundleError

    st.title("Embedding explorer")
    cfg = settings()
    if cfg.bundle is None or cfg.pins is None:
        missing = [n for n, v in (("--bundle BUNDLE_DIR", cfg.bundle), ("--pins PINS.parquet or --repo", cfg.pins))
                   if v is None]
        st.warning("The explorer needs an exported bundle and a pins table: start the dashboard with "
                   + " and ".join(missing) + ".")
        return
    try:
        search = _searcher(str(cfg.bundle), str(cfg.pins), (_mtime(cfg.bundle / "query" / "manifest.json"),
                                                            _mtime(cfg.pins)))
    except (BundleError, DashboardDataError, OSError, ValueError) as exc:
        st.error(f"Cannot load the explorer: {exc}")
        return
    st.caption(f"Bundle `{cfg.bundle}` (model {search.model_version}, {search.dim}-d) · "
               f"{len(search.pins.ids):,} pins from `{cfg.pins}` ({search.pin_source}) · faiss HNSW, inner product")
    c1, c2 = st.columns([4, 1])
    query = c1.text_input("Query", key="query", placeholder="e.g. angle bracket")
    k = c2.number_input("k", min_value=1, max_value=100, value=10, key="k")
    if not query.strip():
        st.info("Type a query to embed it live and see its nearest pins.")
        return
    hits = search.search(query, int(k))
    m1, m2, m3 = st.columns(3)
    m1.metric("normalised query", hits.normalized or "∅")
    m2.metric("embedding norm", f"{float(np.linalg.norm(hits.embedding)):.4f}")
    m3.metric("encode + search", f"{1000 * hits.seconds:.1f} ms")
    look = online_lookup(cfg.repo, hits.normalized, hits.embedding, search.model_version)
    if look.state == "found":
        same = "the bundle's version" if look.current else f"another model version ({look.model_version})"
        st.success(f"Online store: found `{hits.normalized}` — written by {same}; cosine to the live "
                   f"embedding {look.cosine:.4f}.")
    elif look.state == "missing":
        st.info(f"Online store: {look.message}; the serving path would embed it live (ODFV / cache-through).")
    elif look.state == "not configured":
        st.info(f"{NOT_CONFIGURED.capitalize()}: {look.message.split(': ', 1)[-1]}")
    else:
        st.warning(look.message)
    st.subheader(f"Nearest {len(hits.hits)} pins")
    st.dataframe(hits.hits, hide_index=True, width="stretch")
    show_chart(charts.hits_chart(hits.hits))
    with st.expander("Embedding values"):
        st.write(np.round(hits.embedding, 4).tolist())
