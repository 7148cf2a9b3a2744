"""The demo as a list of steps: each one is a real ``searchsage``/``feast`` command a user could type.

Pure description (no I/O): :func:`build_plan` turns a :class:`DemoConfig` into ordered
:class:`Step` objects; :mod:`encoders.demo.runner` executes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

StepKind = Literal["searchsage", "feast", "python"]


@dataclass
class DemoConfig:
    """What the demo runs on and how big it is.

    ``data``: ``None`` (synthetic), a Home Depot-style CSV, or a dataset directory.
    ``train_minutes``: wall-clock budget of the training step (minutes).
    ``small``: tiny sizes for tests (500 pins, a few training steps, 2k users).
    ``homefeed``: also run homefeed retrieval at small size over the synthetic catalogue
    (:mod:`encoders.demo.homefeed`; skipped with ``--data``).
    """

    workdir: Path
    data: Path | None = None
    base_model: str | None = None
    train_minutes: float = 3.0
    small: bool = False
    users: int = 20_000
    days: int = 14
    threads: int = 2
    query_for_rank: str | None = None
    retrain: bool = False
    homefeed: bool = True

    @property
    def dataset_dir(self) -> Path:
        if self.data is not None and self.data.is_dir():
            return self.data
        return self.workdir / "data"

    @property
    def run_dir(self) -> Path:
        return self.workdir / "run"

    @property
    def bundle_dir(self) -> Path:
        return self.workdir / "bundle"

    @property
    def repo_dir(self) -> Path:
        return self.workdir / "feature_repo"

    @property
    def logs_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def results_dir(self) -> Path:
        return self.workdir / "results"

    @property
    def homefeed_data(self) -> Path:
        return self.workdir / "homefeed" / "data"

    @property
    def homefeed_run(self) -> Path:
        return self.workdir / "homefeed" / "run"

    @property
    def homefeed_eval(self) -> Path:
        return self.workdir / "homefeed" / "run" / "eval"

    @property
    def homefeed_bundle(self) -> Path:
        return self.workdir / "homefeed" / "bundle"


@dataclass
class Step:
    """One demo step: a title for the progress display and the command it runs."""

    title: str
    kind: StepKind
    args: list[str] = field(default_factory=list)
    skip_if_exists: Path | None = None
    ok_exit_codes: tuple[int, ...] = (0,)


def build_plan(cfg: DemoConfig) -> list[Step]:
    """The ordered steps of the demo for ``cfg`` (commands only; the runner adds Redis and Feast set-up)."""
    base = ["--base-model", cfg.base_model] if cfg.base_model else []
    ds, run, bundle = str(cfg.dataset_dir), str(cfg.run_dir), str(cfg.bundle_dir)
    steps: list[Step] = []
    if cfg.data is None:
        synth = ["data", "synth", "--out", ds] + (["--preset", "small"] if cfg.small else [])
        steps.append(Step("synthetic catalogue, queries and engagement", "searchsage", synth,
                          skip_if_exists=cfg.dataset_dir / "judgments.parquet"))
    elif cfg.data.is_file():
        steps.append(Step("import the Home Depot relevance file", "searchsage",
                          ["data", "import-homedepot", str(cfg.data), "--out", ds],
                          skip_if_exists=cfg.dataset_dir / "judgments.parquet"))
    steps.append(Step("frozen pin embeddings (pin tower stand-in)", "searchsage",
                      ["pins", "embed", ds, "--threads", str(cfg.threads), *base]))
    train = ["train", "--data", ds, "--out", run, "--threads", str(cfg.threads), *base]
    train += ["--max-steps", "6", "--batch-size", "32"] if cfg.small else ["--max-minutes", str(cfg.train_minutes)]
    steps.append(Step("train the query tower", "searchsage", train,
                      skip_if_exists=None if cfg.retrain else cfg.run_dir / "train_summary.json"))
    steps.append(Step("evaluate vs BM25 and zero-shot", "searchsage",
                      ["evaluate", "--data", ds, "--run", run, "--threads", str(cfg.threads)]
                      + (["--bootstrap-reps", "200"] if cfg.small else [])))
    export = ["export", "--run", run, "--out", bundle, *base]
    if cfg.small:  # a few training steps on 500 pins: keep the parity checks, but int8 is not the point here
        export += ["--int8-cos-mean", "0.9", "--int8-cos-min", "0.8"]
    steps.append(Step("export ONNX bundles (fp32 + int8) and verify parity", "searchsage", export))
    return steps
