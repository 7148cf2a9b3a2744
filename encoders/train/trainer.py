"""Train a :class:`~encoders.model.tower.QueryTower` into a frozen pin space.

``train(config) -> TrainResult`` reads a dataset directory (``pins.parquet`` with ``embedding``,
``engagements.parquet``, optional ``judgments.parquet``), trains with the in-batch softmax of
:mod:`encoders.train.loss` and writes a run directory::

    tower_config.json, tower.pt      the trained tower (QueryTower.save)
    checkpoint.pt                    model/optimizer/scheduler/temperature/sampler/RNG state + step
    train_log.jsonl                  one JSON object per logging step
    train_summary.json               config, steps, epochs, wall time, final loss, stop reason
    hard_negatives.npz               mined hard negatives (when used; reused on resume)
    average/                         the tail-averaged tower (with --average-last)

The pin matrix ``(P, D)`` is frozen; when D differs from the encoder's hidden size the readout is
randomly initialised, otherwise it starts as the identity (the untrained tower = zero-shot model).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from encoders.data.schema import DatasetPaths, pin_embedding_matrix, read_table
from encoders.model.tower import (
    QueryTower,
    TowerConfig,
    embed_in_length_buckets,
    encode_texts,
    load_tokenizer,
)
from encoders.train.config import TrainConfig, TrainResult
from encoders.train.loss import Temperature, in_batch_softmax_loss, near_duplicate_mask
from encoders.train.negatives import (
    CACHE_FILE,
    HardNegatives,
    bm25_rankings,
    dense_rankings,
    select_candidates,
)
from encoders.train.pseudo_queries import PseudoQueries, learn_context_words
from encoders.train.query_variants import QueryVariantConfig, QueryVariants
from encoders.train.sampler import Batch, PairSampler, TrainingPairs, training_pairs
from encoders.train.weight_space import TailAverage, interpolate_weights

CHECKPOINT = "checkpoint.pt"
AVERAGE_DIR = "average"  # the tail-averaged tower (--average-last)


class TrainDataError(ValueError):
    """The dataset or run directory cannot be used for training (names the file and what is expected)."""


def load_training_data(data_dir: str | Path) -> tuple[list[str], list[str], np.ndarray, Any, Any]:
    """``(pin_ids, pin_texts, pin_emb (P, D) float32, engagements table, judgments table | None)``."""
    paths = DatasetPaths(Path(data_dir))
    pins = read_table(paths.pins, "pins")
    if "embedding" not in pins.column_names:
        raise TrainDataError(
            f"file {paths.pins}: no 'embedding' column; the frozen pin embeddings are required "
            "(run `searchsage pins embed --data DIR` first)"
        )
    emb = pin_embedding_matrix(pins)
    engagements = read_table(paths.engagements, "engagements")
    judgments = read_table(paths.judgments, "judgments") if paths.judgments.exists() else None
    return pins.column("pin_id").to_pylist(), pins.column("text").to_pylist(), emb, engagements, judgments


def _judged_by_query(judgments: Any, pin_index: dict[str, int]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    if judgments is None:
        return out
    for q, pid, g in zip(
        judgments.column("query").to_pylist(), judgments.column("pin_id").to_pylist(),
        judgments.column("grade").to_pylist(), strict=True,
    ):
        if pid in pin_index:
            out.setdefault(q, {})[pin_index[pid]] = float(g)
    return out


def _known_positives(
    pairs: TrainingPairs, judged: dict[str, dict[int, float]], config: TrainConfig
) -> dict[str, set[int]]:
    """Pins never used as a negative for a query: its training positives plus pins judged
    ``>= hard_negative_exclude_grade`` for it (when judgments exist)."""
    known = pairs.positives_by_query()
    if config.hard_negative_exclude_grade is not None:
        for q, grades in judged.items():
            good = {p for p, g in grades.items() if g >= config.hard_negative_exclude_grade}
            if good and q in known:
                known[q] |= good
    return known


def mine_hard_negatives(
    config: TrainConfig, tower: QueryTower, tokenizer: Any, pairs: TrainingPairs, pin_texts: list[str],
    pin_emb: np.ndarray, judged: dict[str, dict[int, float]], run_dir: Path,
) -> HardNegatives:
    """Compute (or load the run's cached) hard negatives for every training query.

    ``config.hard_negative_cache`` names a file shared between runs (same data and mining options):
    loaded when it exists, written after mining otherwise.
    """
    cache = run_dir / CACHE_FILE
    if cache.exists():
        return HardNegatives.load(cache)
    shared = Path(config.hard_negative_cache) if config.hard_negative_cache else None
    if shared is not None and shared.exists():
        negs = HardNegatives.load(shared)
        negs.save(cache)
        return negs
    queries = sorted(set(pairs.queries.tolist()))
    hi = config.hard_negative_window[1]
    rankings = []
    if config.hard_negative_source in ("bm25", "both"):
        rankings.append(bm25_rankings(queries, pin_texts, hi, threads=config.threads))
    if config.hard_negative_source in ("zeroshot", "both"):
        q_emb = encode_texts(tower, tokenizer, queries, config.max_length, progress=config.progress).numpy()
        rankings.append(dense_rankings(q_emb, pin_emb, hi))
    negs = select_candidates(
        queries, rankings, pairs.positives_by_query(), judged, config.hard_negative_window,
        config.hard_negative_exclude_grade,
    )
    negs.save(cache)
    if shared is not None:
        shared.parent.mkdir(parents=True, exist_ok=True)
        negs.save(shared)
    return negs


def lr_factor(progress: float, warmup: float) -> float:
    """Linear warm-up over the first ``warmup`` fraction of training, then linear decay to 0."""
    if progress < warmup:
        return max(progress / warmup, 1e-3)
    return max(0.0, (1.0 - progress) / max(1e-9, 1.0 - warmup))


def _build_tower(config: TrainConfig, base_model: str, dim: int) -> QueryTower:
    from transformers import AutoConfig

    hidden = int(AutoConfig.from_pretrained(base_model).hidden_size)
    init = config.readout_init
    if init == "auto":
        init = "identity" if dim == hidden else "random"
    tcfg = TowerConfig(
        base_model=base_model, out_dim=dim, pooling=config.pooling, normalize=True,
        max_length=config.max_length, readout_init=init,
    )
    return QueryTower(tcfg)


def freeze_lower_layers(tower: QueryTower, train_layers: int | None) -> None:
    """Freeze the encoder except its top ``train_layers`` layers (the readout always trains)."""
    if train_layers is None:
        return
    stacks = [m for n, m in tower.encoder.named_modules()
              if isinstance(m, nn.ModuleList) and n.rsplit(".", 1)[-1] in ("layer", "layers")]
    if not stacks:
        raise TrainDataError("--train-layers needs an encoder with a 'layer'/'layers' module list (BERT-like)")
    layers = list(stacks[0])
    if not 0 <= train_layers <= len(layers):
        raise TrainDataError(f"--train-layers must be between 0 and {len(layers)}, got {train_layers}")
    for p in tower.encoder.parameters():
        p.requires_grad_(False)
    for layer in layers[len(layers) - train_layers :]:
        for p in layer.parameters():
            p.requires_grad_(True)


class _Negatives:
    """Draws the extra negative columns of one step: hard + random + queue (ids into the pin matrix)."""

    def __init__(self, config: TrainConfig, n_pins: int, hard: HardNegatives | None, seed: int):
        self.config, self.n_pins, self.hard = config, n_pins, hard
        self.rng = np.random.default_rng([seed, 1])
        self.queue = np.zeros(0, dtype=np.int64)
        self.full = config.random_negatives < 0

    def draw(self, queries: list[str], pos: np.ndarray) -> torch.Tensor | None:
        """Ids of the sampled extra negatives (hard + random + queue); the whole catalogue, when
        ``random_negatives == -1``, is added by the caller as one more block (no copy)."""
        parts = []
        if self.hard is not None and self.config.hard_negatives > 0:
            parts.append(self.hard.sample(queries, self.config.hard_negatives, self.rng))
        if self.config.random_negatives > 0:
            parts.append(self.rng.integers(0, self.n_pins, self.config.random_negatives))
        if self.config.queue_size > 0 and len(self.queue):
            parts.append(self.queue)
        if self.config.queue_size > 0:
            self.queue = np.concatenate([pos, self.queue])[: self.config.queue_size]
        return torch.from_numpy(np.concatenate(parts).astype(np.int64)) if parts else None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "queue": self.queue.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.queue = np.asarray(state["queue"], dtype=np.int64)


class _Augmenter:
    """Appends ``config.pseudo_queries`` pseudo-query rows (weight ``pseudo_query_weight``) to a batch."""

    def __init__(self, config: TrainConfig, pin_texts: list[str], pairs: TrainingPairs, seed: int):
        self.n, self.weight = config.pseudo_queries, config.pseudo_query_weight
        self.mask_matches = config.mask_pseudo_query_matches
        self.rng = np.random.default_rng([seed, 2])
        self.source = None
        if self.n > 0:
            queries = pairs.queries.tolist()
            variants = None
            if config.pseudo_query_variants:
                context = learn_context_words(queries, pairs.pin_idx.tolist(), pin_texts)
                variants = QueryVariants(QueryVariantConfig.like_real_queries(), context)
            self.source = PseudoQueries(pin_texts, [len(q.split()) for q in queries], variants=variants)

    def extend(self, batch: Batch) -> tuple[Batch, list[np.ndarray] | None]:
        """The batch with the pseudo-query rows appended, and (with ``mask_pseudo_query_matches``)
        per appended row the pins that match its cut as well as its own pin does, else None."""
        if self.source is None:
            return batch, None
        matches = None
        if self.mask_matches:
            queries, pins, matches = self.source.draw_with_matches(self.n, self.rng)
        else:
            queries, pins = self.source.draw(self.n, self.rng)
        return Batch(
            queries=batch.queries + queries, pin_idx=np.concatenate([batch.pin_idx, pins]),
            weights=np.concatenate([batch.weights, np.full(len(pins), self.weight, dtype=np.float32)]),
            tasks=batch.tasks + ["pseudo"] * len(pins),
        ), matches

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


def _row_known_positives(
    known: dict[str, set[int]] | None, queries: list[str], pseudo_matches: Sequence[Collection[int]] | None
) -> list[Collection[int]] | None:
    """Per row of a batch of ``queries``, the pins masked as known positives: those of ``known`` for
    each query text, and for the last ``len(pseudo_matches)`` rows (pseudo-queries) their lexical
    matches as well; None when there is nothing to mask."""
    if known is None and pseudo_matches is None:
        return None
    rows: list[Collection[int]] = [known.get(q, set()) if known is not None else set() for q in queries]
    if pseudo_matches:
        first = len(queries) - len(pseudo_matches)
        # a pseudo-query rarely has known positives of its own: keep its matches as they come then
        rows[first:] = [r.union(m) if r else m for r, m in zip(rows[first:], pseudo_matches, strict=True)]
    return rows


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) one training run; see the module docstring for the outputs."""
    from tqdm.auto import tqdm

    from encoders.model.base_model import resolve_base_model

    t_start = time.perf_counter()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    bf16 = config.precision == "bf16"
    if bf16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        warnings.warn("--precision bf16 on a CPU without native bfloat16: emulated, likely slower than fp32",
                      stacklevel=2)
    run_dir = Path(config.out)
    ckpt_path = run_dir / CHECKPOINT
    if run_dir.exists() and (run_dir / "train_summary.json").exists() and not config.resume:
        raise TrainDataError(f"run directory {run_dir} already holds a finished run; pass --resume or a new --out")
    if config.resume and not ckpt_path.exists():
        raise TrainDataError(f"--resume given but {ckpt_path} does not exist")
    base_model = str(resolve_base_model(config.base_model))
    pin_ids, pin_texts, pin_emb, engagements, judgments = load_training_data(config.data)
    run_dir.mkdir(parents=True, exist_ok=True)
    pin_index = {p: i for i, p in enumerate(pin_ids)}
    pairs = training_pairs(engagements, pin_index, judgments, config.extra_positive_grade, config.extra_positive_weight,
                           hold_out_validation=config.hold_out_validation)
    sampler = PairSampler(pairs, config.batch_size, config.seed, config.max_per_pin, config.task_weights)
    judged = _judged_by_query(judgments, pin_index)
    known = _known_positives(pairs, judged, config) if config.mask_known_positives else None
    pins_t = torch.from_numpy(np.array(pin_emb, dtype=np.float32, copy=True))
    score_dtype = torch.bfloat16 if bf16 else None
    pins_scored = pins_t if score_dtype is None else pins_t.to(score_dtype)  # the negative columns' copy

    tower = _build_tower(config, base_model, pin_emb.shape[1])
    freeze_lower_layers(tower, config.train_layers)
    start_state = None
    if config.interpolate_start < 1.0:  # the weights training starts from, for weight-space ensembling
        start_state = {k: v.detach().clone() for k, v in tower.state_dict().items()}
    tokenizer = load_tokenizer(base_model)
    temperature = Temperature(config.temperature, learn=config.learn_temperature)
    hard = None
    if config.hard_negatives > 0:
        hard = mine_hard_negatives(config, tower, tokenizer, pairs, pin_texts, pin_emb, judged, run_dir)
    negatives = _Negatives(config, len(pin_ids), hard, config.seed)
    augmenter = _Augmenter(config, pin_texts, pairs, config.seed)
    all_ids = torch.arange(len(pin_ids))

    readout = list(tower.readout.parameters())
    encoder_params = [p for n, p in tower.named_parameters() if not n.startswith("readout.") and p.requires_grad]
    decay = [p for p in encoder_params if p.ndim > 1]
    no_decay = [p for p in encoder_params if p.ndim <= 1]
    groups = [
        {"params": decay, "lr": config.lr, "weight_decay": config.weight_decay},
        {"params": no_decay, "lr": config.lr, "weight_decay": 0.0},
        {"params": readout, "lr": config.readout_lr, "weight_decay": 0.0},
    ]
    if config.learn_temperature:
        groups.append({"params": [temperature.log_tau], "lr": config.temperature_lr, "weight_decay": 0.0})
    optimizer = torch.optim.AdamW(groups)
    per_epoch = sampler.batches_per_epoch()
    total_steps = max(1, math.ceil(config.epochs * per_epoch))
    if config.max_steps is not None:
        total_steps = min(total_steps, config.max_steps)
    sched_steps = config.schedule_steps or total_steps
    budget_s = None if config.max_minutes is None else 60.0 * config.max_minutes
    # progress in [0, 1] drives the LR: the share of scheduled steps done or, with a time budget,
    # the share of the budget spent, whichever is larger (so the LR decays within --max-minutes).
    progress = {"value": 0.0}
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda _step: lr_factor(progress["value"], config.warmup_ratio)
    )

    average = TailAverage(tower, config.average_last)
    step, elapsed_before = 0, 0.0
    if config.resume:
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        tower.load_state_dict(state["model"])
        temperature.load_state_dict(state["temperature"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        sampler.load_state_dict(state["sampler"])
        negatives.load_state_dict(state["negatives"])
        if "augmenter" in state:
            augmenter.load_state_dict(state["augmenter"])
        torch.set_rng_state(state["torch_rng"])
        if "average" in state:
            average.load_state_dict(state["average"])
        step, elapsed_before = int(state["step"]), float(state.get("elapsed_s", 0.0))

    def save_checkpoint() -> None:
        state = {
            "model": tower.state_dict(), "temperature": temperature.state_dict(),
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "sampler": sampler.state_dict(), "negatives": negatives.state_dict(),
            "augmenter": augmenter.state_dict(), "average": average.state_dict(),
            "torch_rng": torch.get_rng_state(), "step": step, "config": config.to_dict(),
            "elapsed_s": elapsed_before + time.perf_counter() - t_start,
        }
        tmp = ckpt_path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        tmp.replace(ckpt_path)

    log_file = (run_dir / "train_log.jsonl").open("a")
    deadline = None if config.max_minutes is None else t_start + 60.0 * config.max_minutes - elapsed_before
    history: list[tuple[int, float]] = []
    window_loss, window_acc, window_n = 0.0, 0.0, 0
    stopped_by = "max_steps" if config.max_steps is not None and total_steps == config.max_steps else "epochs"
    tower.train()
    bar = tqdm(total=total_steps, initial=step, disable=not config.progress, desc="train", unit="step")
    batches = iter(sampler)
    try:
        while step < total_steps:
            if deadline is not None and time.perf_counter() >= deadline:
                stopped_by = "max_minutes"
                break
            batch, pseudo_matches = augmenter.extend(next(batches))
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                q = embed_in_length_buckets(tower, tokenizer, batch.queries, config.max_length, config.length_buckets)
            q = q.float()
            pos = torch.from_numpy(batch.pin_idx)
            sampled = negatives.draw(batch.queries, batch.pin_idx)
            blocks = [] if sampled is None else [pins_scored[sampled]]
            id_parts = [] if sampled is None else [sampled]
            if negatives.full:
                blocks.append(pins_scored)
                id_parts.append(all_ids)
            p_pos = pins_t[pos]
            also = None
            if config.mask_similar_pins is not None:
                also = near_duplicate_mask(p_pos, blocks, config.mask_similar_pins)
            out = in_batch_softmax_loss(
                q, p_pos, temperature(), pos,
                extra=blocks or None, extra_ids=torch.cat(id_parts) if id_parts else None,
                known_positives=_row_known_positives(known, batch.queries, pseudo_matches),
                weights=torch.from_numpy(batch.weights), also_mask=also, score_dtype=score_dtype,
            )
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            nn.utils.clip_grad_norm_([p for p in tower.parameters() if p.requires_grad], config.max_grad_norm)
            optimizer.step()
            elapsed = elapsed_before + time.perf_counter() - t_start
            progress["value"] = max((step + 1) / sched_steps, elapsed / budget_s if budget_s else 0.0)
            scheduler.step()
            average.update(progress["value"])
            step += 1
            window_loss, window_acc, window_n = window_loss + float(out.loss.detach()), window_acc + out.accuracy, window_n + 1
            bar.update(1)
            bar.set_postfix(loss=f"{float(out.loss.detach()):.3f}", tau=f"{float(temperature().detach()):.3f}")
            if step % config.log_every == 0 or step == total_steps:
                rec = {
                    "step": step, "epoch": round(step / per_epoch, 4), "loss": window_loss / window_n,
                    "accuracy": window_acc / window_n, "lr": scheduler.get_last_lr()[0],
                    "readout_lr": scheduler.get_last_lr()[2], "temperature": float(temperature().detach()),
                    "elapsed_s": round(elapsed_before + time.perf_counter() - t_start, 3),
                }
                log_file.write(json.dumps(rec) + "\n")
                log_file.flush()
                history.append((step, rec["loss"]))
                window_loss, window_acc, window_n = 0.0, 0.0, 0
            if config.checkpoint_every and step % config.checkpoint_every == 0:
                save_checkpoint()
    finally:
        bar.close()
        log_file.close()
    if window_n:
        history.append((step, window_loss / window_n))
    save_checkpoint()
    tower.eval()
    if start_state is not None:
        interpolate_weights(tower, start_state, config.interpolate_start)
    tower.save(run_dir)
    if average.steps:
        average.save(run_dir / AVERAGE_DIR)
    wall = elapsed_before + time.perf_counter() - t_start
    final_loss = history[-1][1] if history else float("nan")
    summary = {
        "config": config.to_dict(), "base_model": base_model, "steps": step, "total_steps": total_steps,
        "batches_per_epoch": per_epoch, "epochs": round(step / per_epoch, 4), "train_pairs": len(pairs),
        "pins": len(pin_ids), "dim": int(pin_emb.shape[1]), "wall_time_s": round(wall, 2),
        "final_loss": final_loss if history else None, "temperature": float(temperature().detach()), "stopped_by": stopped_by,
        "readout_init": tower.config.readout_init, "averaged_steps": average.steps,
    }
    (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(
        run_dir=run_dir, steps=step, epochs=step / per_epoch, wall_time_s=wall, final_loss=final_loss,
        stopped_by=stopped_by, temperature=float(temperature().detach()), history=history,
    )
