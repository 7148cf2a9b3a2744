"""Fine-tuning the cross-encoder teacher on graded judgments.

Each step takes whole queries (all their judged items of the ``train`` split) until about
``batch_pairs`` pairs, so the loss can compare items of the same query:

* **pointwise**: binary cross-entropy of ``sigmoid(logit)`` against the grade mapped to ``[0, 1]``
  (works for any scale: Home Depot's rater means, 1..5, the synthetic 1/2/3);
* **pairwise** (weight ``pairwise_weight``): RankNet's logistic loss on every pair of the same query
  whose grades differ, weighted by the grade difference (in unit scale). Kendall tau and nDCG are
  within-query measures; the pointwise term alone spends capacity on between-query differences.

The learning-rate schedule (linear warm-up, linear decay) is planned for ``epochs``; with
``max_minutes`` it is re-planned every ``REPLAN_EVERY`` steps (from step ``PLAN_AFTER_STEPS``) from the
mean step time so far, so that it ends inside the budget even when the machine's load changes.
After training, the model scores the ``validation`` split: isotonic calibration
(:mod:`encoders.relevance.calibration`) is fitted there and reported.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from encoders.relevance.calibration import calibration_report, fit_isotonic
from encoders.relevance.metrics import kendall_tau_b
from encoders.relevance.pairs import JudgedPairs
from encoders.relevance.teacher_model import LogitModel, load_classifier, pair_tokenizer
from encoders.runtime.cross_encoder import PairTokenizer, calibrate

PLAN_AFTER_STEPS = 20
REPLAN_EVERY = 10


@dataclass
class TeacherConfig:
    """Options of ``searchsage relevance train-teacher`` (validated in ``__post_init__``)."""

    base_model: str | None = None
    max_length: int = 64
    batch_pairs: int = 64
    lr: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    epochs: float = 1.0
    max_minutes: float | None = None
    pairwise_weight: float = 1.0
    precision: Literal["fp32", "bf16"] = "fp32"
    device: str = "cpu"
    threads: int | None = None
    seed: int = 0
    max_validation_pairs: int | None = 20_000

    def __post_init__(self) -> None:
        checks = {
            "max_length": self.max_length >= 8, "batch_pairs": self.batch_pairs >= 2, "lr": self.lr > 0,
            "warmup": 0 <= self.warmup < 1, "epochs": self.epochs > 0,
            "max_minutes": self.max_minutes is None or self.max_minutes > 0,
            "pairwise_weight": self.pairwise_weight >= 0, "precision": self.precision in ("fp32", "bf16"),
            "threads": self.threads is None or self.threads >= 1,
            "max_validation_pairs": self.max_validation_pairs is None or self.max_validation_pairs >= 1,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"invalid teacher option {bad[0]}={getattr(self, bad[0])!r}")


@dataclass
class TeacherTrainResult:
    """What training measured: steps, pairs seen, seconds, last losses, validation figures."""

    steps: int
    pairs_seen: int
    epochs_done: float
    seconds: float
    initial_loss: float
    final_loss: float
    validation: dict[str, object]
    calibration: dict[str, list[float]]


def pair_loss(logits: torch.Tensor, unit: torch.Tensor, group: torch.Tensor, pairwise_weight: float) -> torch.Tensor:
    """Pointwise BCE + weighted RankNet over same-query pairs; ``logits/unit/group`` all ``(B,)``."""
    loss = nn.functional.binary_cross_entropy_with_logits(logits, unit)
    if pairwise_weight > 0:
        diff = unit[:, None] - unit[None, :]
        same = (group[:, None] == group[None, :]) & (diff > 1e-6)
        if same.any():
            margin = logits[:, None] - logits[None, :]
            w = diff[same]
            loss = loss + pairwise_weight * (nn.functional.softplus(-margin[same]) * w).sum() / w.sum()
    return loss


def step_groups(groups: list[np.ndarray], batch_pairs: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch: shuffled query groups packed into steps of about ``batch_pairs`` rows.

    Whole queries are packed until a step holds ``batch_pairs`` rows or more. A query with more
    judged pairs than ``batch_pairs`` (a dataset that judges hundreds of items per query) is first cut
    into ``ceil(size / batch_pairs)`` random parts of near-equal size, each packed like a query of its
    own: a step stays under ``2 * batch_pairs`` rows and still compares items of the same query.
    """
    parts: list[np.ndarray] = []
    for g in groups:
        if g.size > batch_pairs:
            parts += np.array_split(rng.permutation(g), -(-g.size // batch_pairs))
        else:
            parts.append(g)
    out, cur, n = [], [], 0
    for gi in rng.permutation(len(parts)):
        cur.append(parts[gi])
        n += parts[gi].size
        if n >= batch_pairs:
            out.append(np.concatenate(cur))
            cur, n = [], 0
    if cur:
        out.append(np.concatenate(cur))
    return out


def _tensors(tok: PairTokenizer, pairs: JudgedPairs, idx: np.ndarray, device: str) -> dict[str, torch.Tensor]:
    batch = tok([pairs.queries[i] for i in idx], [pairs.texts[i] for i in idx])
    return {k: torch.from_numpy(v).to(device) for k, v in batch.feeds().items()}


@torch.no_grad()
def predict_logits(model: LogitModel, tok: PairTokenizer, pairs: JudgedPairs, batch_size: int = 256,
                   device: str = "cpu", bf16: bool = False, progress: bool = False) -> np.ndarray:
    """Logits ``(N,)`` of all pairs (length-sorted batches), torch."""
    from tqdm.auto import tqdm

    model.eval()
    rows = tok.encode(pairs.queries, pairs.texts)
    order = np.argsort([len(r[0]) for r in rows], kind="stable")
    out = np.zeros(len(pairs), dtype=np.float32)
    for s in tqdm(range(0, order.size, batch_size), desc="teacher scores", disable=not progress, unit="batch"):
        idx = order[s : s + batch_size]
        feeds = {k: torch.from_numpy(v).to(device) for k, v in tok.pad([rows[i] for i in idx]).feeds().items()}
        with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
            out[idx] = model(**feeds).float().cpu().numpy()
    return out


def validation_figures(pairs: JudgedPairs, grades: np.ndarray) -> dict[str, float]:
    """Mean per-query Kendall tau-b over queries with >= 2 distinct grades (a constant score list counts
    as tau 0, as in ``searchsage relevance evaluate``), and the query count."""
    taus = []
    for g in pairs.query_groups():
        if np.unique(pairs.grades[g]).size >= 2:
            t = kendall_tau_b(grades[g], pairs.grades[g])
            taus.append(0.0 if not np.isfinite(t) else float(t))
    return {"kendall_tau": float(np.mean(taus)) if taus else float("nan"), "queries": len(taus)}


def validation_sample(pairs: JudgedPairs, max_pairs: int | None, seed: int = 0) -> JudgedPairs:
    """The validation split's pairs, or whole validation queries in a seeded order until ``max_pairs``
    (calibrating on 110k pairs of a fully judged dataset would take longer than training)."""
    val = pairs.subset("validation")
    if max_pairs is None or len(val) <= max_pairs:
        return val
    groups = val.query_groups()
    order = np.random.default_rng(seed).permutation(len(groups))
    sizes = np.asarray([groups[i].size for i in order])
    keep = max(1, int(np.searchsorted(np.cumsum(sizes), max_pairs, side="right")))
    return val.subset(np.sort(np.concatenate([groups[i] for i in order[:keep]])))


def train_teacher(pairs: JudgedPairs, config: TeacherConfig, progress: bool = True
                  ) -> tuple[LogitModel, PairTokenizer, TeacherTrainResult]:
    """Fine-tune on ``pairs.subset("train")``, calibrate and report on ``"validation"``."""
    from tqdm.auto import tqdm

    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    train, val = pairs.subset("train"), validation_sample(pairs, config.max_validation_pairs, config.seed)
    if len(train) == 0:
        raise ValueError("no judged pair of a training query (md5 split): nothing to train the teacher on")
    device, bf16 = config.device, config.precision == "bf16"
    model = LogitModel(load_classifier(config.base_model)).to(device)
    tok = pair_tokenizer(config.base_model, config.max_length)
    groups = train.query_groups()
    unit_all = pairs.scale.to_unit(train.grades).astype(np.float32)
    group_id = np.zeros(len(train), dtype=np.int64)
    for gi, g in enumerate(groups):
        group_id[g] = gi
    steps_per_epoch = len(step_groups(groups, config.batch_pairs, np.random.default_rng(0)))
    total = max(1, math.ceil(steps_per_epoch * config.epochs))
    decay = [p for n, p in model.named_parameters() if p.ndim > 1 and "LayerNorm" not in n]
    rest = [p for n, p in model.named_parameters() if not (p.ndim > 1 and "LayerNorm" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                             {"params": rest, "weight_decay": 0.0}], lr=config.lr)
    plan = {"total": total}

    def lr_at(step: int) -> float:
        warm = max(1, int(config.warmup * plan["total"]))
        if step < warm:
            return config.lr * (step + 1) / warm
        return config.lr * max(0.0, (plan["total"] - step) / max(1, plan["total"] - warm))

    t0, step, seen, losses = time.perf_counter(), 0, 0, []
    bar = tqdm(total=total, desc="teacher", disable=not progress, unit="step")
    epoch = 0
    while step < plan["total"]:
        for idx in step_groups(groups, config.batch_pairs, rng):
            if step >= plan["total"]:
                break
            model.train()
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            feeds = _tensors(tok, train, idx, device)
            with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=bf16):
                logits = model(**feeds)
            loss = pair_loss(logits.float(), torch.from_numpy(unit_all[idx]).to(device),
                             torch.from_numpy(group_id[idx]).to(device), config.pairwise_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step, seen = step + 1, seen + idx.size
            losses.append(float(loss.detach()))
            if config.max_minutes and step >= PLAN_AFTER_STEPS and step % REPLAN_EVERY == 0:
                elapsed = time.perf_counter() - t0
                left = int((config.max_minutes * 60 - elapsed) / (elapsed / step))
                plan["total"] = max(step + 1, min(total, step + left))
                bar.total = plan["total"]
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        epoch += 1
    bar.close()
    seconds = time.perf_counter() - t0
    validation: dict[str, object] = {}
    knots: dict[str, list[float]] = {}
    if len(val):
        p = 1.0 / (1.0 + np.exp(-predict_logits(model, tok, val, device=device, bf16=bf16, progress=progress)
                                .astype(np.float64)))
        knots = fit_isotonic(p, val.grades, pairs.scale.lowest, pairs.scale.highest)
        raw = calibrate(p, {}, pairs.scale.lowest, pairs.scale.highest)
        cal = calibrate(p, knots, pairs.scale.lowest, pairs.scale.highest)
        validation = {
            **validation_figures(val, p), "pairs": len(val),
            "calibration_uncalibrated": calibration_report(raw, val.grades).to_dict(),
            "calibration": calibration_report(cal, val.grades).to_dict(),
        }
    result = TeacherTrainResult(step, seen, seen / max(1, len(train)), seconds, float(np.mean(losses[:20])),
                                float(np.mean(losses[-20:])), validation, knots)
    return model, tok, result


def save_teacher(model: LogitModel, tok: PairTokenizer, config: TeacherConfig, result: TeacherTrainResult,
                 scale_dict: dict[str, object], out: str | Path) -> Path:
    """Write the fine-tuned classifier (``OUT/model``, transformers format) and ``OUT/teacher.json``."""
    import json
    import shutil

    out = Path(out)
    (out / "model").mkdir(parents=True, exist_ok=True)
    model.classifier.save_pretrained(str(out / "model"))
    shutil.copyfile(tok.path, out / "model" / "tokenizer.json")
    meta = {"config": asdict(config), "result": asdict(result), "grade_scale": scale_dict}
    (out / "teacher.json").write_text(json.dumps(meta, indent=2, default=float) + "\n")
    return out
