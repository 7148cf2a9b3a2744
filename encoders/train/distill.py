"""Distilling the relevance teacher into the tower (RocketQA-style; Qu et al. 2021, Ren et al. 2021).

The labels file (``searchsage relevance label``, :mod:`encoders.relevance.labels`) holds, for each
train/validation query, the teacher's calibrated grade of its judged pins and of the top unjudged
pins a retrieval model returns. The trainer uses it twice:

* **soft labels** (``--distill-weight W``, ``--distill-temperature T``): for every distinct query of
  a step's real rows that has labels, the KL divergence ``KL(p_teacher || p_tower)`` between the
  teacher's distribution over its labelled pins, ``softmax(grade / T)``, and the tower's softmax over
  the same pins, ``softmax(q · p / τ)`` with the training temperature τ; the mean over those queries,
  times W, is added to the loss (RocketQAv2's listwise distillation, with the cross-encoder's grades
  as the target);
* **false negatives** (``--teacher-false-negative-grade G``): a pin the teacher grades ``>= G`` for a
  query is masked in that query's rows, like a known positive -- as an in-batch column, a mined hard
  negative, a random or catalogue column (RocketQA's denoised hard negatives).

Labels of queries held out of training never train: eval queries always, validation queries with
``--hold-out-validation``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from encoders.data.split import is_eval_query, is_validation_query

REQUIRED_COLUMNS = ("query", "pin_id", "grade")


class TeacherLabelsError(ValueError):
    """The teacher labels file cannot be used (names the file and, where it applies, the column)."""


@dataclass
class TeacherLabels:
    """``by_query[query] = (pin rows (C,) int64, teacher grades (C,) float32)``."""

    by_query: dict[str, tuple[np.ndarray, np.ndarray]]

    def __len__(self) -> int:
        return len(self.by_query)

    def false_negatives(self, min_grade: float) -> dict[str, set[int]]:
        """Per query, the pins the teacher grades ``>= min_grade`` (queries with none are left out)."""
        out: dict[str, set[int]] = {}
        for q, (pins, grades) in self.by_query.items():
            good = pins[grades >= min_grade]
            if len(good):
                out[q] = set(good.tolist())
        return out

    def targets(self, queries: Sequence[str], temperature: float) -> DistillTargets | None:
        """The distillation targets of the distinct labelled queries among ``queries`` (first row of
        each), or None when none has labels."""
        rows, cands, dists = [], [], []
        seen: set[str] = set()
        for i, q in enumerate(queries):
            if q in seen or q not in self.by_query:
                continue
            seen.add(q)
            pins, grades = self.by_query[q]
            z = grades.astype(np.float64) / temperature
            p = np.exp(z - z.max())
            rows.append(i), cands.append(pins), dists.append(p / p.sum())
        if not rows:
            return None
        width = max(len(c) for c in cands)
        cand = np.zeros((len(rows), width), dtype=np.int64)
        prob = np.zeros((len(rows), width), dtype=np.float32)
        valid = np.zeros((len(rows), width), dtype=bool)
        for k, (c, p) in enumerate(zip(cands, dists, strict=True)):
            cand[k, : len(c)], prob[k, : len(c)], valid[k, : len(c)] = c, p, True
        return DistillTargets(torch.tensor(rows), torch.from_numpy(cand), torch.from_numpy(prob),
                              torch.from_numpy(valid))


@dataclass
class DistillTargets:
    """One step's targets: ``rows (Q,)`` batch rows, ``candidates (Q, C)`` pin rows (padded),
    ``teacher (Q, C)`` the teacher's distribution (0 on padding), ``valid (Q, C)`` bool."""

    rows: torch.Tensor
    candidates: torch.Tensor
    teacher: torch.Tensor
    valid: torch.Tensor


def distill_loss(q: torch.Tensor, pins: torch.Tensor, temperature: torch.Tensor | float,
                 targets: DistillTargets) -> torch.Tensor:
    """Mean over the targets' queries of ``KL(teacher || softmax(q · p / τ))`` over each query's
    labelled pins: ``q (B, D)`` query embeddings, ``pins (P, D)`` the frozen pin matrix."""
    x = q[targets.rows.to(q.device)]  # (Q, D)
    cand = pins[targets.candidates.to(pins.device)].to(device=q.device, dtype=q.dtype)  # (Q, C, D)
    valid = targets.valid.to(q.device)
    logits = torch.einsum("qd,qcd->qc", x, cand) / temperature
    log_student = nn.functional.log_softmax(logits.masked_fill(~valid, float("-inf")), dim=1).masked_fill(~valid, 0.0)
    t = targets.teacher.to(device=q.device, dtype=q.dtype)  # 0 on padding: those cells add nothing
    per_cell = t * (torch.log(t.clamp(min=1e-30)) - log_student)
    return per_cell.sum(dim=1).mean()


def load_teacher_labels(path: str | Path, pin_index: Mapping[str, int],
                        hold_out_validation: bool = False) -> TeacherLabels:
    """Read a labels parquet (columns ``query``, ``pin_id``, ``grade``; others ignored) into
    :class:`TeacherLabels`, keeping only queries that may train (see the module docstring).

    Raises :class:`TeacherLabelsError` naming the file and column for a missing file, a missing
    column, a non-numeric or non-finite grade or a pin id that is not in ``pins.parquet``.
    """
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    import pyarrow.types as pt

    path = Path(path)
    if not path.is_file():
        raise TeacherLabelsError(f"--teacher-labels: file {path} does not exist")
    try:
        schema = pq.read_schema(path)
    except Exception as exc:
        raise TeacherLabelsError(f"--teacher-labels: file {path} is not a readable parquet file ({exc})") from None
    for col in REQUIRED_COLUMNS:
        if col not in schema.names:
            raise TeacherLabelsError(f"file {path}: no {col!r} column (teacher labels need columns "
                                     f"{', '.join(REQUIRED_COLUMNS)}; write them with `searchsage relevance label`)")
    table = pq.read_table(path, columns=list(REQUIRED_COLUMNS))
    grade_type = table.schema.field("grade").type
    if not (pt.is_integer(grade_type) or pt.is_floating(grade_type) or pt.is_decimal(grade_type)):
        raise TeacherLabelsError(f"file {path}: column 'grade' must be numeric, got {grade_type}")
    grades = table.column("grade").to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(grades))
    if len(bad):
        raise TeacherLabelsError(f"file {path}: column 'grade' has {len(bad)} missing or non-finite values "
                                 f"(first at row {bad[0]})")
    queries = table.column("query").cast("string").to_pylist()
    pin_ids = pc.cast(table.column("pin_id"), "string").to_pylist()
    rows = np.fromiter((pin_index.get(p, -1) for p in pin_ids), dtype=np.int64, count=len(pin_ids))
    missing = np.flatnonzero(rows < 0)
    if len(missing):
        raise TeacherLabelsError(f"file {path}: column 'pin_id' has {len(missing)} ids not in pins.parquet "
                                 f"(first {pin_ids[missing[0]]!r} at row {missing[0]}); labels of another dataset?")
    groups: dict[str, list[int]] = {}
    for i, q in enumerate(queries):
        if q is None or is_eval_query(q) or (hold_out_validation and is_validation_query(q)):
            continue
        groups.setdefault(q, []).append(i)
    by_query = {q: (rows[ix], grades[ix].astype(np.float32)) for q, ix in groups.items()}
    return TeacherLabels(by_query)


def merge_known(known: dict[str, set[int]] | None, extra: Mapping[str, set[int]]) -> dict[str, set[int]]:
    """``known`` with ``extra``'s pins added per query (a new dict; ``known`` is not changed)."""
    out = {q: set(s) for q, s in (known or {}).items()}
    for q, s in extra.items():
        out.setdefault(q, set()).update(s)
    return out
