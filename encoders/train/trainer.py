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

The parts: :func:`_set_up` builds a run, :class:`~encoders.train.state.TrainState` is what a
checkpoint saves and resuming restores, :func:`~encoders.train.step.train_step` takes one step,
:func:`_run_loop` repeats it (logging and checkpointing) and :func:`summarize` writes the summary.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from encoders.data.schema import DatasetPaths, pin_embedding_matrix, read_table
from encoders.model.tower import QueryTower, TowerConfig, encode_texts, load_tokenizer
from encoders.train.config import TrainConfig, TrainResult
from encoders.train.device import OnDevice, Precision, resolve_device
from encoders.train.distributed import DistContext, RankShard, init_from_env, launched_world, rank_seed
from encoders.train.loss import Temperature
from encoders.train.negatives import (
    CACHE_FILE,
    HardNegatives,
    bm25_rankings,
    dense_rankings,
    select_candidates,
)
from encoders.train.run_log import Clock, TrainLog
from encoders.train.sampler import PairSampler, TrainingPairs, training_pairs
from encoders.train.state import Schedule, TrainState, build_optimizer_and_schedule
from encoders.train.step import (
    ExtraNegatives,
    PseudoQueryAugmenter,
    StepInputs,
    build_step_extras,
    train_step,
)
from encoders.train.streaming import StreamingSampler, stream_training_data
from encoders.train.weight_space import TailAverage, interpolate_weights

CHECKPOINT = "checkpoint.pt"
AVERAGE_DIR = "average"  # the tail-averaged tower (--average-last)


class TrainDataError(ValueError):
    """The dataset or run directory cannot be used for training (names the file and what is expected)."""


def load_training_data(data_dir: str | Path, engagements: bool = True) -> tuple[list[str], list[str], np.ndarray, Any, Any]:
    """``(pin_ids, pin_texts, pin_emb (P, D) float32, engagements table | None, judgments table | None)``
    (``engagements=False``: not read, as ``--stream`` reads it by row groups)."""
    paths = DatasetPaths(Path(data_dir))
    pins = read_table(paths.pins, "pins")
    if "embedding" not in pins.column_names:
        raise TrainDataError(
            f"file {paths.pins}: no 'embedding' column; the frozen pin embeddings are required "
            "(run `searchsage pins embed --data DIR` first)"
        )
    emb = pin_embedding_matrix(pins)
    if engagements or not paths.engagements.exists():  # (a missing file: the clear "file not found" error)
        table = read_table(paths.engagements, "engagements")
    else:
        table = None
    judgments = read_table(paths.judgments, "judgments") if paths.judgments.exists() else None
    return pins.column("pin_id").to_pylist(), pins.column("text").to_pylist(), emb, table, judgments


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


@dataclass
class _Setup:
    """What a run is built from before its first step (see :func:`_set_up`)."""

    base_model: str
    n_pairs: int
    n_pins: int
    dim: int
    state: TrainState
    inputs: StepInputs
    schedule: Schedule
    batches_per_epoch: int
    start_weights: dict[str, torch.Tensor] | None  # for weight-space ensembling (interpolate_start < 1)
    model: nn.Module  # what a step calls: the tower, moved to the device, under DDP with torchrun
    ctx: DistContext | None  # the process group (None: one process)


def _set_up(config: TrainConfig, run_dir: Path, device: torch.device, ctx: DistContext | None) -> _Setup:
    """Read the data, build the sampler, tower, negatives, pseudo-queries, optimizer and schedule (in
    this order: the torch RNG draws of a run depend on it); move the tower to ``device`` and, with a
    process group ``ctx``, wrap it in DDP (rank 0 mines the hard negatives, the others load them)."""
    from encoders.model.base_model import resolve_base_model

    base_model = str(resolve_base_model(config.base_model))
    pin_ids, pin_texts, pin_emb, engagements, judgments = load_training_data(config.data, not config.stream)
    run_dir.mkdir(parents=True, exist_ok=True)
    pin_index = {p: i for i, p in enumerate(pin_ids)}
    judged = _judged_by_query(judgments, pin_index)
    sampler: PairSampler | StreamingSampler
    if config.stream:  # pass 1 over the row groups; ``pairs`` is then a uniform sample (pseudo-query statistics)
        streamed, sampler, known = stream_training_data(config, DatasetPaths(Path(config.data)).engagements,
                                                        pin_ids, judgments, judged)
        pairs, n_pairs, epoch_pins = streamed.sample, len(streamed), sampler.epoch_pins(0)
    else:
        pairs = training_pairs(engagements, pin_index, judgments, config.extra_positive_grade,
                               config.extra_positive_weight, hold_out_validation=config.hold_out_validation)
        sampler = PairSampler(pairs, config.batch_size, config.seed, config.max_per_pin, config.task_weights)
        known = _known_positives(pairs, judged, config) if config.mask_known_positives else None
        n_pairs, epoch_pins = len(pairs), (pairs.pin_idx[sampler.epoch_order(e)] for e in (0,))
    # logQ counts: one pass over the pins of an epoch as the sampler orders it (computed only when on)
    log_q, teacher = build_step_extras(config, pin_index, epoch_pins)
    pins = torch.from_numpy(np.array(pin_emb, dtype=np.float32, copy=True))

    tower = _build_tower(config, base_model, pin_emb.shape[1])
    freeze_lower_layers(tower, config.train_layers)
    start_weights = None
    if config.interpolate_start < 1.0:
        start_weights = {k: v.detach().clone() for k, v in tower.state_dict().items()}
    tokenizer = load_tokenizer(base_model)
    temperature = Temperature(config.temperature, learn=config.learn_temperature)
    hard = None
    if config.hard_negatives > 0:
        if ctx is not None and not ctx.is_main:
            ctx.barrier()  # rank 0 mines and writes the run's cache, then the others read it
        hard = mine_hard_negatives(config, tower, tokenizer, pairs, pin_texts, pin_emb, judged, run_dir)
        if ctx is not None and ctx.is_main:
            ctx.barrier()
    negatives = ExtraNegatives(config, len(pin_ids), hard, config.seed)
    augmenter = PseudoQueryAugmenter(config, pin_texts, pairs, config.seed)
    per_epoch = sampler.batches_per_epoch()
    tower.to(device), temperature.to(device)
    model: nn.Module = tower if device.type == "cpu" else OnDevice(tower, device)
    shard = None if ctx is None else RankShard(ctx)
    if shard is not None:
        model = shard.wrap(model, device)
    optimizer, scheduler, schedule = build_optimizer_and_schedule(config, tower, temperature, per_epoch)
    precision = Precision(config.precision, device)
    state = TrainState(tower, temperature, optimizer, scheduler, sampler, negatives, augmenter,
                       TailAverage(tower, config.average_last), precision=precision)
    inputs = StepInputs(config, tokenizer, pins.to(device), known, log_q, teacher, precision=precision, shard=shard)
    return _Setup(base_model, n_pairs, len(pin_ids), int(pin_emb.shape[1]), state, inputs, schedule, per_epoch,
                  start_weights, model, ctx)


def _run_loop(config: TrainConfig, run: _Setup, clock: Clock, log: TrainLog, checkpoint: Path) -> str:
    """Take steps until the schedule's last step or the time budget; checkpoint every
    ``checkpoint_every`` steps. Returns what stopped it: ``"epochs"``, ``"max_steps"`` or ``"max_minutes"``."""
    from tqdm.auto import tqdm

    state, schedule, ctx = run.state, run.schedule, run.ctx
    main = ctx is None or ctx.is_main
    total = schedule.total_steps
    deadline = None if config.max_minutes is None else clock.t_start + 60.0 * config.max_minutes - clock.elapsed_before
    stopped_by = "max_steps" if config.max_steps is not None and total == config.max_steps else "epochs"
    state.tower.train()
    bar = tqdm(total=total, initial=state.step, disable=not (config.progress and main), desc="train", unit="step")
    batches = iter(state.sampler)
    try:
        while state.step < total:
            out_of_time = deadline is not None and time.perf_counter() >= deadline
            if ctx is not None and deadline is not None:
                out_of_time = ctx.any(out_of_time)  # every rank stops at the same step
            if out_of_time:
                stopped_by = "max_minutes"
                break
            if ctx is not None:  # dropout: distinct per rank, a function of the step (resumes exactly)
                torch.manual_seed(rank_seed(config.seed, state.step, ctx.rank))
            out = train_step(run.inputs, next(batches), run.model, state.temperature, state.optimizer,
                             state.negatives, state.augmenter)
            schedule.advance(state.step + 1, clock.elapsed())
            state.scheduler.step()
            state.average.update(schedule.progress)
            state.step += 1
            log.add(out)
            bar.update(1)
            bar.set_postfix(loss=f"{float(out.loss.detach()):.3f}", tau=f"{float(state.temperature().detach()):.3f}")
            if state.step % config.log_every == 0 or state.step == total:
                log.write(state, run.batches_per_epoch, clock.elapsed())
            if main and config.checkpoint_every and state.step % config.checkpoint_every == 0:
                state.save(checkpoint, config, clock.elapsed())
    finally:
        bar.close()
        log.close(state.step)
    return stopped_by


def summarize(config: TrainConfig, run: _Setup, history: list[tuple[int, float]], stopped_by: str,
              wall_s: float, run_dir: Path) -> TrainResult:
    """Write ``train_summary.json`` (rank 0 only) and return the run's :class:`TrainResult`."""
    state, per_epoch = run.state, run.batches_per_epoch
    final_loss = history[-1][1] if history else float("nan")
    temperature = float(state.temperature().detach())
    summary = {
        "config": config.to_dict(), "base_model": run.base_model, "steps": state.step,
        "total_steps": run.schedule.total_steps, "batches_per_epoch": per_epoch,
        "epochs": round(state.step / per_epoch, 4), "train_pairs": run.n_pairs, "pins": run.n_pins, "dim": run.dim,
        "wall_time_s": round(wall_s, 2), "final_loss": final_loss if history else None, "temperature": temperature,
        "stopped_by": stopped_by, "readout_init": state.tower.config.readout_init, "averaged_steps": state.average.steps,
        "processes": 1 if run.ctx is None else run.ctx.world, "device": str(run.inputs.pins.device),
    }
    if run.ctx is None or run.ctx.is_main:
        (run_dir / "train_summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(
        run_dir=run_dir, steps=state.step, epochs=state.step / per_epoch, wall_time_s=wall_s, final_loss=final_loss,
        stopped_by=stopped_by, temperature=temperature, history=history, rank=0 if run.ctx is None else run.ctx.rank,
    )


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) one training run; see the module docstring for the outputs.

    The parts, in order: :func:`_set_up` (data, tower, negatives, optimizer and schedule),
    :meth:`TrainState.restore` (``resume``), :func:`_run_loop` (:func:`~encoders.train.step.train_step`
    per step, logging, checkpoints), the saved towers, then :func:`summarize`.
    """
    clock = Clock()
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    launched = launched_world()  # (world, local rank) under torchrun with more than one process
    device = resolve_device(config.device, None if launched is None else launched[1])
    if config.precision == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        warnings.warn("--precision bf16 on a CPU without native bfloat16: emulated, likely slower than fp32",
                      stacklevel=2)
    Precision(config.precision, device)  # fp16 off CUDA (--device auto on a CPU): the error before any work
    run_dir = Path(config.out)
    checkpoint = run_dir / CHECKPOINT
    if run_dir.exists() and (run_dir / "train_summary.json").exists() and not config.resume:
        raise TrainDataError(f"run directory {run_dir} already holds a finished run; pass --resume or a new --out")
    if config.resume and not checkpoint.exists():
        raise TrainDataError(f"--resume given but {checkpoint} does not exist")
    ctx = None if launched is None else init_from_env(device)
    try:
        return _train(config, run_dir, checkpoint, device, ctx, clock)
    finally:
        if ctx is not None:
            ctx.close()


def _train(config: TrainConfig, run_dir: Path, checkpoint: Path, device: torch.device, ctx: DistContext | None,
           clock: Clock) -> TrainResult:
    """:func:`train` once the device and the process group are known: every rank runs it; rank 0
    alone writes the checkpoint, the log, the towers and the summary."""
    main = ctx is None or ctx.is_main
    run = _set_up(config, run_dir, device, ctx)
    state = run.state
    if config.resume:
        state.restore(checkpoint)
        clock.elapsed_before = state.elapsed_before

    log = TrainLog(run_dir / "train_log.jsonl" if main else None)
    stopped_by = _run_loop(config, run, clock, log, checkpoint)
    if main:
        state.save(checkpoint, config, clock.elapsed())
    state.tower.eval().cpu()
    if main:
        if run.start_weights is not None:
            interpolate_weights(state.tower, run.start_weights, config.interpolate_start)
        state.tower.save(run_dir)
        if state.average.steps:
            state.average.save(run_dir / AVERAGE_DIR)
    return summarize(config, run, log.history, stopped_by, clock.elapsed(), run_dir)
