"""Shared Streamlit helpers for the pages: settings, the experiment picker, friendly errors."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.loaders import (
    DashboardDataError,
    Experiment,
    ExperimentStatus,
    list_experiments,
    load_experiment,
)
from dashboard.settings import DashboardSettings

EXPERIMENT_KEY = "experiment"


def settings() -> DashboardSettings:
    """The settings passed by ``searchsage dashboard`` (env vars; read on every run)."""
    return DashboardSettings.from_env()


def readable_experiments(root: Path) -> tuple[list[ExperimentStatus], str | None]:
    """``(statuses, error message or None)``; never raises for missing/malformed files."""
    try:
        return list_experiments(root), None
    except DashboardDataError as exc:
        return [], str(exc)


def pick_experiment(label: str = "Experiment") -> str | None:
    """A selectbox over the readable experiments; remembers the choice across pages (and the URL)."""
    cfg = settings()
    statuses, error = readable_experiments(cfg.results)
    if error:
        st.error(error)
        return None
    names = [s.path.name for s in statuses if s.error is None]
    for s in statuses:
        if s.error is not None:
            st.warning(f"Skipping {s.path.name}: {s.error}")
    if not names:
        st.info(f"No analysed experiments in {cfg.results}. Run `searchsage abtest analyze LOGS --control NAME "
                f"--out {cfg.results}` first.")
        return None
    wanted = st.session_state.get(EXPERIMENT_KEY) or st.query_params.get(EXPERIMENT_KEY)
    index = names.index(wanted) if wanted in names else 0
    choice = st.selectbox(label, names, index=index)
    st.session_state[EXPERIMENT_KEY] = choice
    st.query_params[EXPERIMENT_KEY] = choice
    return choice


def fmt_pct(x: float | None) -> str:
    """``+1.23%`` (``–`` for missing)."""
    if x is None or x != x:
        return "–"
    return f"{100 * x:+.2f}%"


def show_chart(chart: object, stretch: bool = True) -> None:
    """``st.altair_chart`` with the chart's own height (Streamlit otherwise squeezes layered charts)."""
    h = getattr(chart, "height", None)
    spec = chart.to_dict() if hasattr(chart, "to_dict") else {}
    faceted = "facet" in spec or "column" in (spec.get("encoding") or {})
    kw = {"height": int(h) + 70} if isinstance(h, int | float) and not faceted else {}
    st.altair_chart(chart, width="stretch" if stretch else "content", **kw)


def picked_experiment(label: str = "Experiment") -> Experiment | None:
    """:func:`pick_experiment`, then load it; a load error is shown on the page and gives ``None``."""
    name = pick_experiment(label)
    if name is None:
        return None
    try:
        return load_experiment(settings().results, name)
    except DashboardDataError as exc:
        st.error(f"Cannot show {name}: {exc}")
        return None
