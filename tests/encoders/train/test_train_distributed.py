"""Data-parallel training in real ``torchrun`` processes (2 CPU ranks, gloo) on a tiny dataset.

The 2-rank run must follow the single-process run with the same global batch step by step (the
loss of every step within 1e-4 in fp32, the same weights), and its checkpoint must resume in one
process and end where the uninterrupted single-process run ends. The tiny BERT has its dropout
turned off: with dropout, the ranks draw their own masks and the two runs agree in distribution
only.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_dataset import write_tiny_dataset

from encoders.train.config import TrainConfig
from encoders.train.distributed import row_range
from encoders.train.trainer import train

ROOT = Path(__file__).resolve().parents[3]
WORDS = ["chair", "table", "lamp", "door", "window", "floor", "tile", "paint", "brush", "drill", "saw", "hammer"]
COLORS = ["red", "blue", "green", "black", "white", "steel"]
# judged pairs that are not engagements: graded positives of weight 0.5 (unequal row weights)
JUDGED = [("red chair", "p1", 3.0), ("blue lamp", "p3", 3.0), ("green door", "p5", 3.0)]
DRIVER = """
import json, sys
from encoders.train.config import TrainConfig
from encoders.train.trainer import train
train(TrainConfig(**json.loads(sys.argv[1])))
"""
GRAD_DRIVER = """
import json, sys
sys.path.insert(0, sys.argv[3])
from test_train_distributed import one_step_gradients
one_step_gradients(json.loads(sys.argv[1]), sys.argv[2])
"""

pytestmark = pytest.mark.slow  # each torchrun start imports torch and transformers in every rank


def _dataset(root: Path, dim: int = 32) -> Path:
    return write_tiny_dataset(root, WORDS, COLORS, JUDGED, dim=dim)


@pytest.fixture(scope="module")
def no_dropout_bert(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bert-no-dropout") / "bert"
    shutil.copytree(tiny_bert_dir, out)
    cfg = json.loads((out / "config.json").read_text())
    cfg.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (out / "config.json").write_text(json.dumps(cfg))
    return out


def _options(data: Path, out: Path, base: Path, **kw: object) -> dict[str, object]:
    """A run that exercises every part a rank must agree on: pseudo-query rows (weight 0.25),
    graded positives (weight 0.5), mined hard, random and queued negatives, a learned temperature."""
    opts: dict[str, object] = dict(
        data=str(data), out=str(out), base_model=str(base), batch_size=10, lr=1e-3, readout_lr=1e-2,
        temperature=0.1, learn_temperature=True, epochs=100, max_per_pin=None, log_every=1, progress=False,
        threads=1, schedule_steps=8, pseudo_queries=3, pseudo_query_weight=0.25, random_negatives=4, queue_size=6,
        hard_negatives=2, hard_negative_window=[0, 6], extra_positive_grade=3.0, length_buckets=2,
    )
    opts.update(kw)
    return opts


def _config(opts: dict[str, object]) -> TrainConfig:
    d = dict(opts)
    d["hard_negative_window"] = tuple(d["hard_negative_window"])  # type: ignore[arg-type]
    return TrainConfig(**d)  # type: ignore[arg-type]


def one_step_gradients(opts: dict[str, object], dest: str) -> None:
    """Take one step (gradient clipping off) and save every gradient the optimizer stepped with
    (rank 0; under torchrun the process group is joined as :func:`train` joins it)."""
    from encoders.train import trainer
    from encoders.train.distributed import init_from_env, launched_world
    from encoders.train.step import train_step

    config = _config({**opts, "max_grad_norm": 1e9})
    torch.set_num_threads(1)
    torch.manual_seed(config.seed)
    ctx = init_from_env(torch.device("cpu")) if launched_world() else None
    run = trainer._set_up(config, Path(config.out), torch.device("cpu"), ctx)
    s = run.state
    train_step(run.inputs, next(iter(s.sampler)), run.model, s.temperature, s.optimizer, s.negatives, s.augmenter)
    grads = {n: p.grad for n, p in s.tower.named_parameters() if p.grad is not None}
    grads["log_tau"] = s.temperature.log_tau.grad
    if ctx is None or ctx.is_main:
        torch.save(grads, dest)
    if ctx is not None:
        ctx.close()


def _torchrun(tmp: Path, nproc: int, args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc), *args]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "train_log.jsonl").read_text().splitlines())}


def test_row_ranges_cover_the_batch_once() -> None:
    for n, world in ((10, 2), (13, 2), (13, 4), (3, 3)):
        ranges = [row_range(n, r, world) for r in range(world)]
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
        assert max(hi - lo for lo, hi in ranges) - min(hi - lo for lo, hi in ranges) <= 1


def test_two_ranks_take_the_single_process_gradient(tmp_path: Path, no_dropout_bert: Path) -> None:
    """The step's gradients themselves (AdamW hides a wrong scale from the loss: it is scale-free)."""
    data = _dataset(tmp_path / "data")
    one_step_gradients(_options(data, tmp_path / "single", no_dropout_bert), str(tmp_path / "single.pt"))
    driver = tmp_path / "grad_driver.py"
    driver.write_text(GRAD_DRIVER)
    _torchrun(tmp_path, 2, [str(driver), json.dumps(_options(data, tmp_path / "ddp", no_dropout_bert)),
                            str(tmp_path / "ddp.pt"), str(Path(__file__).parent)])
    ref, got = torch.load(tmp_path / "single.pt"), torch.load(tmp_path / "ddp.pt")
    assert sorted(ref) == sorted(got) and len(ref) > 10
    for name, g in ref.items():
        scale = float(g.abs().max())
        assert float((got[name] - g).abs().max()) <= 1e-4 * max(scale, 1e-3), name
    assert float(ref["log_tau"].abs()) > 0  # the learned temperature's gradient is compared too


def test_two_ranks_follow_one_process_and_resume_in_one(tmp_path: Path, no_dropout_bert: Path) -> None:
    data = _dataset(tmp_path / "data")
    single = train(_config(_options(data, tmp_path / "single", no_dropout_bert, max_steps=8)))
    assert single.steps == 8

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    _torchrun(tmp_path, 2, [str(driver), json.dumps(_options(data, tmp_path / "ddp", no_dropout_bert, max_steps=5))])
    ddp_run = tmp_path / "ddp"
    summary = json.loads((ddp_run / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 5
    ref, got = _losses(tmp_path / "single"), _losses(ddp_run)
    assert sorted(got) == [1, 2, 3, 4, 5]  # one record per step: rank 1 wrote nothing
    deltas = [abs(got[s] - ref[s]) for s in range(1, 6)]
    assert max(deltas) <= 1e-4, (deltas, got, ref)
    assert len({round(v, 3) for v in got.values()}) > 1  # the loss moved: the steps trained
    ckpt = torch.load(ddp_run / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 5 and ckpt["sampler"]["batch_index"] == 5

    # the 2-rank checkpoint resumes in one process and lands on the single-process run
    resumed = train(_config(_options(data, ddp_run, no_dropout_bert, max_steps=8, resume=True)))
    assert resumed.steps == 8
    got = _losses(ddp_run)
    assert max(abs(got[s] - ref[s]) for s in (6, 7, 8)) <= 1e-4, (got, ref)
    a = torch.load(tmp_path / "single" / "tower.pt", weights_only=True)
    b = torch.load(ddp_run / "tower.pt", weights_only=True)
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    assert resumed.temperature == pytest.approx(single.temperature, abs=1e-5)


def test_the_cli_module_runs_under_torchrun(tmp_path: Path, no_dropout_bert: Path) -> None:
    """The documented command: ``torchrun --standalone --nproc-per-node 2 -m encoders.cli.main train``."""
    data = _dataset(tmp_path / "data")
    out = tmp_path / "run"
    proc = _torchrun(tmp_path, 2, ["-m", "encoders.cli.main", "train", "--data", str(data), "--out", str(out),
                                   "--base-model", str(no_dropout_bert), "--batch-size", "8", "--max-steps", "2",
                                   "--threads", "1", "--device", "cpu"])
    assert proc.stdout.count("trained 2 steps") == 1  # rank 0 reports, rank 1 is silent
    assert proc.stderr.count("train:   0%") == 1  # one progress bar: rank 0's
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["processes"] == 2 and summary["config"]["batch_size"] == 8
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 1
