"""Shared names for the dashboard tests (a unique module name: ``conftest`` is ambiguous across dirs)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HEALTHY, SRM = "ranker_v2", "ranker_srm"


@dataclass(frozen=True)
class DashEnv:
    """Paths of the generated inputs."""

    data: Path
    run: Path
    bundle: Path
    results: Path
    logs: dict[str, Path]
    homefeed: Path  # the --out of `searchsage homefeed evaluate` (eval_report.json)

    @property
    def pins(self) -> Path:
        return self.data / "pins.parquet"

    def env(self, **extra: str) -> dict[str, str]:
        """Dashboard env vars for these inputs (see ``dashboard.settings``)."""
        base = {"SEARCHSAGE_DASH_RESULTS": str(self.results), "SEARCHSAGE_DASH_BUNDLE": str(self.bundle),
                "SEARCHSAGE_DASH_PINS": str(self.pins), "SEARCHSAGE_DASH_REPO": "",
                "SEARCHSAGE_DASH_HOMEFEED": str(self.homefeed)}
        return {**base, **extra}


def run_cli(*argv: str) -> None:
    from encoders.cli.main import main

    assert main(list(argv)) == 0, f"searchsage {' '.join(argv)} failed"
