"""The options of an offline evaluation (``searchsage evaluate``), each declared once.

:class:`EvalConfig` holds every option's default, help text and check; the command's flags are
generated from it (:func:`encoders.cli_support.add_config_options`) and the defaults of
:func:`encoders.eval.report.evaluate` are read from it. Imports nothing heavy, so the CLI can
build its parser without numpy / torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

#: The P@k relevance threshold when ``dataset.json`` has no ``positive_threshold``.
DEFAULT_RELEVANT_GRADE = 2.67
#: Systems evaluated by default; :data:`RUN_SYSTEMS` are added when a run directory is given.
DEFAULT_SYSTEMS = ("bm25", "zero_shot")
RUN_SYSTEMS = ("searchsage", "prf", "blend")


@dataclass(frozen=True)
class HNSWConfig:
    """faiss ``IndexHNSWFlat`` settings: graph degree ``m``, build and search beam widths."""

    m: int = 32
    ef_construction: int = 200
    ef_search: int = 128


def parse_int_list(text: str) -> tuple[int, ...]:
    """``"10,100"`` -> ``(10, 100)``: positive integers, comma-separated."""
    try:
        out = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None
    if not out or min(out) < 1:
        raise ValueError(f"expected positive integers, got {text!r}")
    return out


def parse_systems(text: str) -> tuple[str, ...] | None:
    """``"bm25,searchsage"`` -> ``("bm25", "searchsage")``; an empty list -> None (the default set)."""
    return tuple(s.strip() for s in text.split(",") if s.strip()) or None


@dataclass
class EvalConfig:
    """Every option of ``searchsage evaluate`` but ``--data``, ``--prf-k``/``--prf-weight``
    (:class:`~encoders.runtime.pin_feedback.PinFeedback`'s) and ``--no-progress``.

    ``metadata["help"]`` is the flag's help (``{default}`` shows the default), ``"type"`` /
    ``"flag"`` as in :func:`encoders.cli_support.add_config_options`; ``__post_init__`` rejects
    out-of-range values with a ValueError naming the ``--flag``.
    """

    run: Path | None = field(
        default=None, metadata={"help": "trained run directory (output of `searchsage train`)", "type": Path})
    systems: tuple[str, ...] | None = field(default=None, metadata={
        "help": f"comma-separated subset of {','.join(DEFAULT_SYSTEMS + RUN_SYSTEMS)} "
        f"(default: {','.join(DEFAULT_SYSTEMS)}, plus {','.join(RUN_SYSTEMS)} with --run)",
        "type": parse_systems})
    index_size: int | None = field(default=None, metadata={
        "help": "index of N random pins (always holding the positives); default: all pins"})
    k: tuple[int, ...] = field(default=(10, 100), metadata={
        "help": "Recall cut-offs (default {default})", "type": parse_int_list})
    hnsw: bool = field(default=False, metadata={"help": "also search a faiss HNSW index; report its recall vs exact"})
    ef_search: int = field(default=HNSWConfig.ef_search, metadata={"help": "HNSW efSearch (default {default})"})
    hnsw_m: int = field(default=HNSWConfig.m, metadata={"help": "HNSW graph degree M (default {default})"})
    base_model: str | None = field(default=None, metadata={
        "help": "zero-shot base model directory (default: the run's base model, else the packaged MiniLM)"})
    relevant_grade: float | None = field(default=None, metadata={
        "help": f"P@8 relevance threshold (default: dataset.json positive_threshold, else {DEFAULT_RELEVANT_GRADE:g})"})
    seed: int = field(default=0, metadata={"help": "seed for index sampling and the bootstrap (default {default})"})
    bootstrap_reps: int = field(default=1000, metadata={"help": "bootstrap replicates (default {default})"})
    threads: int | None = field(default=None, metadata={"help": "torch/faiss threads (default: library default)"})
    out: Path | None = field(
        default=None, metadata={"help": "output directory for the report (default: --run)", "type": Path})

    def __post_init__(self) -> None:
        if self.index_size is not None and self.index_size < 1:
            raise ValueError(f"--index-size must be a positive integer, got {self.index_size}")
        if self.ef_search < 1 or self.hnsw_m < 2:
            raise ValueError("--ef-search must be >= 1 and --hnsw-m >= 2")

    def hnsw_config(self) -> HNSWConfig:
        """The :class:`HNSWConfig` of ``hnsw_m`` / ``ef_search`` (``ef_construction``: its default)."""
        return HNSWConfig(m=self.hnsw_m, ef_search=self.ef_search)
