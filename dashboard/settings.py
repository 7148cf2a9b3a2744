"""Dashboard settings, passed from ``searchsage dashboard`` to the Streamlit process by env vars."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENV_RESULTS = "SEARCHSAGE_DASH_RESULTS"
ENV_BUNDLE = "SEARCHSAGE_DASH_BUNDLE"
ENV_REPO = "SEARCHSAGE_DASH_REPO"
ENV_PINS = "SEARCHSAGE_DASH_PINS"
ENV_HOMEFEED = "SEARCHSAGE_DASH_HOMEFEED"
DEFAULT_RESULTS = "ab_results"


@dataclass(frozen=True)
class DashboardSettings:
    """Where the dashboard reads from.

    ``results``: the A/B results root (one sub-directory per experiment, ``docs/abtest.md``);
    ``bundle``: an exported bundle (``searchsage export``) for the explorer and model card;
    ``repo``: a Feast repository whose Redis online store the explorer checks (None = not configured);
    ``pins``: a pins parquet (``pin_id``, ``text``[, ``embedding``]) for the explorer's faiss index;
    defaults to ``<repo>/data/pins.parquet`` when a repo is given;
    ``homefeed``: a homefeed ``eval_report.json`` (or the directory of ``searchsage homefeed evaluate --out``).
    """

    results: Path
    bundle: Path | None = None
    repo: Path | None = None
    pins: Path | None = None
    homefeed: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardSettings:
        e = os.environ if env is None else env

        def path(name: str) -> Path | None:
            v = (e.get(name) or "").strip()
            return Path(v).expanduser() if v else None

        repo = path(ENV_REPO)
        pins = path(ENV_PINS) or (repo / "data" / "pins.parquet" if repo is not None else None)
        return cls(results=path(ENV_RESULTS) or Path(DEFAULT_RESULTS), bundle=path(ENV_BUNDLE), repo=repo, pins=pins,
                   homefeed=path(ENV_HOMEFEED))

    def to_env(self) -> dict[str, str]:
        """The env vars that reproduce these settings in a child process (absolute paths)."""
        out = {ENV_RESULTS: str(self.results.resolve())}
        for name, value in ((ENV_BUNDLE, self.bundle), (ENV_REPO, self.repo), (ENV_PINS, self.pins),
                            (ENV_HOMEFEED, self.homefeed)):
            out[name] = str(value.resolve()) if value is not None else ""
        return out
