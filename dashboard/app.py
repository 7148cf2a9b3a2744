"""Streamlit entry script: ``streamlit run dashboard/app.py`` (use ``searchsage dashboard``).

Settings come from env vars (:mod:`dashboard.settings`). Pages: Experiments, Experiment detail,
Relevance, Embedding explorer, Model card, Homefeed (``st.navigation`` multipage).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts only dashboard/ on sys.path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard.views import (  # noqa: E402
    REGISTRY,
    experiment_detail,
    experiments,
    explorer,
    homefeed,
    model_card,
    relevance,
)


def main() -> None:
    st.set_page_config(page_title="SearchSage experiments", page_icon=":material/search:", layout="wide")
    pages = {
        "experiments": st.Page(experiments.render, title="Experiments", icon=":material/science:", url_path="experiments",
                               default=True),
        "detail": st.Page(experiment_detail.render, title="Experiment detail", icon=":material/monitoring:", url_path="detail"),
        "relevance": st.Page(relevance.render, title="Relevance", icon=":material/target:", url_path="relevance"),
        "explorer": st.Page(explorer.render, title="Embedding explorer", icon=":material/explore:", url_path="explorer"),
        "model_card": st.Page(model_card.render, title="Model card", icon=":material/badge:", url_path="model-card"),
        "homefeed": st.Page(homefeed.render, title="Homefeed", icon=":material/home:", url_path="homefeed"),
    }
    REGISTRY.clear()
    REGISTRY.update(pages)
    st.navigation(list(pages.values())).run()


main()
