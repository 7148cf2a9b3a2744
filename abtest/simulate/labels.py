"""Judged samples and a stand-in relevance model for the simulator (and the PPI coverage bench).

**True grade** of a served result = ``min + relevance · (max − min)`` on the dataset's grade scale,
with the arena's relevance in ``[0, 1]`` (:mod:`abtest.simulate.dataset`: a judged pin's grade; a
pin the dataset never judged gets relevance 0 by default, or with ``unjudged="sampled"`` the
relevance of a random judged pin of the same query). Users click on the same relevance, so the
truth the humans judge is the truth the users experience.

**Judged sample** (``judged_fraction < 1``): a seeded random sample of ``round(F · Q)`` queries;
every result any arm served for them is judged with its true grade (nothing else is written).

**Model labels**: a grade for every served result (one per query × pin, so a pin both arms show
gets one label), biased in a way that does not cancel between arms::

    model = clip(mid + (1 − b)·(true − mid) − b·span/2·novel + Normal(0, noise), min, max)

with ``mid`` / ``span`` the middle and width of the scale, ``b`` = ``model_bias`` (shrinkage toward the
middle *and* an offset against **novel** results — pins a treatment arm shows that the control arm
did not show for the query, which a model trained on the old system's results underrates) and
``noise`` = ``model_noise`` in grade units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from abtest.simulate.engine import Arena


@dataclass
class LabelConfig:
    """``judged_fraction`` of queries judged (1.0 = the dataset's own judgments, as before)."""

    judged_fraction: float = 1.0
    model_noise: float = 0.3
    model_bias: float = 0.2
    seed: int = 0


def model_grades(true: np.ndarray, novel: np.ndarray, lo: float, hi: float, noise: float, bias: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Model grades ``(M,)`` for true grades ``true (M,)`` and the ``novel (M,)`` flags (formula above)."""
    mid, span = (lo + hi) / 2, hi - lo
    g = mid + (1.0 - bias) * (np.asarray(true, dtype=np.float64) - mid) - bias * span / 2 * np.asarray(novel)
    return np.clip(g + rng.normal(0.0, noise, size=g.shape), lo, hi)


def _table(qs: list[str], ps: list[str], gs: np.ndarray) -> pa.Table:
    return pa.table({"query": pa.array(qs, pa.string()), "pin_id": pa.array(ps, pa.string()),
                     "grade": pa.array(np.asarray(gs, dtype=np.float64), pa.float64())})


def served_truth(arena: Arena, lo: float, hi: float, control: str = "control"
                 ) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Every (query, pin) any arm served: ``queries, pins (M,)``, true grade, novel flag, query index ``(M,)``."""
    qs, ps, gs, novel, qi = [], [], [], [], []
    span = hi - lo
    for q_idx, q in enumerate(arena.queries):
        ctrl = set(arena.pins[control][q_idx].tolist()) if control in arena.pins else set()
        seen: dict[int, tuple[float, bool]] = {}
        for arm, pins in arena.pins.items():
            for r, p in enumerate(pins[q_idx].tolist()):
                if p >= 0 and p not in seen:
                    seen[p] = (lo + span * float(arena.relevance[arm][q_idx, r]), arm != control and p not in ctrl)
        for p, (g, nov) in seen.items():
            qs.append(q)
            ps.append(arena.pin_ids[p])
            gs.append(g)
            novel.append(nov)
            qi.append(q_idx)
    return qs, ps, np.asarray(gs), np.asarray(novel, dtype=bool), np.asarray(qi, dtype=np.int64)


def simulate_labels(arena: Arena, lo: float, hi: float, cfg: LabelConfig, control: str = "control"
                    ) -> dict[str, pa.Table | None]:
    """``{"model_labels", "judgments", "true_grades"}`` tables (``query, pin_id, grade``) for ``arena``.

    ``judgments`` is ``None`` when ``cfg.judged_fraction >= 1`` (the caller keeps the dataset's own).
    """
    rng = np.random.default_rng([cfg.seed, 7_351])
    qs, ps, true, novel, qi = served_truth(arena, lo, hi, control)
    model = model_grades(true, novel, lo, hi, cfg.model_noise, cfg.model_bias, rng)
    out: dict[str, pa.Table | None] = {"model_labels": _table(qs, ps, model), "true_grades": _table(qs, ps, true),
                                       "judgments": None}
    if cfg.judged_fraction < 1.0:
        n_q = len(arena.queries)
        sample = rng.choice(n_q, size=round(cfg.judged_fraction * n_q), replace=False)
        keep = np.isin(qi, sample)
        idx = np.flatnonzero(keep)
        out["judgments"] = _table([qs[i] for i in idx], [ps[i] for i in idx], true[keep])
    return out
