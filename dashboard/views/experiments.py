"""Experiments page: every analysed experiment in the results directory with its status."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.views import REGISTRY
from dashboard.views.common import EXPERIMENT_KEY, readable_experiments, settings


def _colour_srm(value: str) -> str:
    return {"pass": "background-color: #d4f4dd", "FAIL": "background-color: #fbd5d5"}.get(value, "")


def render() -> None:
    cfg = settings()
    st.title("Experiments")
    st.caption(f"Results directory: `{cfg.results}`")
    statuses, error = readable_experiments(cfg.results)
    if error:
        st.error(error)
        return
    if not statuses:
        st.info(f"No analysed experiments in {cfg.results}. Run `searchsage abtest analyze LOGS --control NAME "
                f"--out {cfg.results}` to create one.")
        return
    table = pd.DataFrame([s.as_row() for s in statuses])
    ok = [s for s in statuses if s.error is None]
    c1, c2, c3 = st.columns(3)
    c1.metric("experiments", len(statuses))
    c2.metric("SRM failures", sum(1 for s in ok if s.srm_passed is False))
    c3.metric("with significant decision metrics", sum(1 for s in ok if (s.n_significant or 0) > 0))
    st.dataframe(table.style.map(_colour_srm, subset=["SRM"]).format({"SRM p": "{:.3g}"}),
                 hide_index=True, width="stretch")
    for s in statuses:
        if s.error:
            st.warning(f"{s.path.name}: {s.error}")
    if ok and "detail" in REGISTRY:
        choice = st.selectbox("Open experiment", [s.path.name for s in ok], key="open_experiment")
        if st.button("Open detail"):
            st.session_state[EXPERIMENT_KEY] = choice
            st.switch_page(REGISTRY["detail"])
