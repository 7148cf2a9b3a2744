"""Teacher distillation: the labels file, the KL term by hand, false-negative masking, a tiny run."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from encoders.data.schema import write_table
from encoders.data.split import is_eval_query, is_validation_query
from encoders.train.config import TrainConfig
from encoders.train.distill import TeacherLabelsError, distill_loss, load_teacher_labels, merge_known
from encoders.train.loss import in_batch_softmax_loss
from encoders.train.step import StepInputs, row_known_positives
from encoders.train.trainer import train

PINS = {f"p{i}": i for i in range(6)}
TRAIN_Q, VALID_Q, EVAL_Q = "query 0", "query 3", "query 4"  # split by md5 (checked below)


def _labels(path: Path, **columns: object) -> Path:
    base: dict[str, object] = {
        "query": [TRAIN_Q, TRAIN_Q, TRAIN_Q, VALID_Q, EVAL_Q],
        "pin_id": ["p0", "p1", "p2", "p3", "p4"],
        "grade": [3.0, 2.0, 2.8, 2.5, 3.0],
        "judged_grade": [3.0, None, None, 2.33, None],
        "split": ["train", "train", "train", "validation", "train"],
    }
    base.update(columns)
    pq.write_table(pa.table(base), path)
    return path


def test_the_query_splits_used_here() -> None:
    assert not is_eval_query(TRAIN_Q) and not is_validation_query(TRAIN_Q)
    assert is_validation_query(VALID_Q) and is_eval_query(EVAL_Q)


def test_labels_load_grouped_by_query_without_held_out_queries(tmp_path: Path) -> None:
    path = _labels(tmp_path / "labels.parquet")
    labels = load_teacher_labels(path, PINS)
    assert set(labels.by_query) == {TRAIN_Q, VALID_Q}  # eval queries never train
    pins, grades = labels.by_query[TRAIN_Q]
    assert pins.tolist() == [0, 1, 2] and grades.tolist() == pytest.approx([3.0, 2.0, 2.8])
    held = load_teacher_labels(path, PINS, hold_out_validation=True)
    assert set(held.by_query) == {TRAIN_Q}
    assert labels.false_negatives(2.8) == {TRAIN_Q: {0, 2}}
    assert labels.false_negatives(3.5) == {}


@pytest.mark.parametrize(("change", "message"), [
    ({"drop": "grade"}, "no 'grade' column"),
    ({"drop": "pin_id"}, "no 'pin_id' column"),
    ({"grade": [3.0, float("nan"), 2.8, 2.5, 3.0]}, "column 'grade' has 1 missing"),
    ({"grade": ["a", "b", "c", "d", "e"]}, "column 'grade' must be numeric"),
    ({"pin_id": ["p0", "p1", "zz", "p3", "p4"]}, "column 'pin_id' has 1 ids not in pins.parquet"),
])
def test_bad_labels_files_name_the_file_and_column(tmp_path: Path, change: dict, message: str) -> None:
    path = tmp_path / "labels.parquet"
    if "drop" in change:
        _labels(path)
        pq.write_table(pq.read_table(path).drop([change["drop"]]), path)
    else:
        _labels(path, **change)
    with pytest.raises(TeacherLabelsError, match=message) as err:
        load_teacher_labels(path, PINS)
    assert str(path) in str(err.value)
    with pytest.raises(TeacherLabelsError, match="does not exist"):
        load_teacher_labels(tmp_path / "missing.parquet", PINS)


def test_kl_term_by_hand(tmp_path: Path) -> None:
    labels = load_teacher_labels(_labels(tmp_path / "l.parquet", grade=[3.0, 2.0, 1.0, 2.5, 3.0]), PINS)
    pins = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    q = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.6, 0.8]])  # row 0: a query without labels
    targets = labels.targets(["no labels", TRAIN_Q, TRAIN_Q], temperature=1.0)
    assert targets is not None and targets.rows.tolist() == [1]  # one row per distinct labelled query
    teacher = [math.exp(g) for g in (3.0, 2.0, 1.0)]
    teacher = [t / sum(teacher) for t in teacher]
    assert targets.teacher[0].tolist() == pytest.approx(teacher, rel=1e-6)
    student_logits = [1.0 / 0.5, 0.0, -1.0 / 0.5]  # q = (1, 0) against pins 0, 1, 2 at τ = 0.5
    z = math.log(sum(math.exp(s) for s in student_logits))
    kl = sum(t * (math.log(t) - (s - z)) for t, s in zip(teacher, student_logits, strict=True))
    assert distill_loss(q, pins, 0.5, targets).item() == pytest.approx(kl, rel=1e-5)
    assert labels.targets(["nothing"], 1.0) is None


def test_kl_is_zero_when_the_tower_agrees_and_its_gradient_moves_towards_the_teacher() -> None:
    from encoders.train.distill import TeacherLabels

    labels = TeacherLabels({"q": (np.array([0, 1]), np.array([3.0, 2.0], dtype=np.float32))})
    pins = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    targets = labels.targets(["q"], temperature=1.0)
    assert targets is not None
    agree = torch.tensor([[1.0, 0.0]])  # logits (1, 0) / τ=1 ≡ grades (3, 2) / T=1 up to a shift
    assert distill_loss(agree, pins, 1.0, targets).item() == pytest.approx(0.0, abs=1e-6)
    x = torch.tensor([[0.0, 1.0]], requires_grad=True)  # prefers pin 1, the teacher pin 0
    before = distill_loss(x, pins, 1.0, targets)
    (grad,) = torch.autograd.grad(before, x)
    assert grad[0, 0] < 0 < grad[0, 1]  # descent raises the score of pin 0, lowers pin 1
    after = distill_loss(x.detach() - 0.5 * grad, pins, 1.0, targets)
    assert after.item() < before.item()


def test_teacher_false_negatives_are_masked_in_their_query_rows(tmp_path: Path) -> None:
    labels = load_teacher_labels(_labels(tmp_path / "l.parquet"), PINS)
    cfg = TrainConfig(data="d", out="o", teacher_labels="x", teacher_false_negative_grade=2.8)
    inputs = StepInputs(cfg, tokenizer=None, pins=torch.zeros(6, 2), known={TRAIN_Q: {5}}, teacher=labels)
    assert inputs.known == {TRAIN_Q: {0, 2, 5}}
    known = row_known_positives(inputs.known, [TRAIN_Q, "other"], None)
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    p = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    extra = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    out = in_batch_softmax_loss(q, p, 1.0, torch.tensor([1, 3]), extra=extra, extra_ids=torch.tensor([2, 4]),
                                known_positives=known)
    assert out.logits[0, 2].item() == float("-inf")  # pin 2: teacher grade 2.8 for TRAIN_Q
    assert out.logits[0, 3].item() == 0.0 and out.logits[1, 2].item() == 0.0  # pin 4; another query
    assert merge_known(None, {"a": {1}}) == {"a": {1}}


def _dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    words = ["chair", "table", "lamp", "door", "window", "floor", "tile", "paint"]
    emb = rng.normal(size=(len(words), 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    write_table(pa.table({"pin_id": [f"p{i}" for i in range(len(words))], "text": [f"{w} item" for w in words],
                          "embedding": pa.array(emb.tolist(), pa.list_(pa.float32()))}), root / "pins.parquet", "pins")
    rows = [(f"{c} {w}", f"p{i}") for i, w in enumerate(words) for c in ("red", "blue", "green", "oak")]
    ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
    write_table(pa.table({
        "query": [r[0] for r in rows], "pin_id": [r[1] for r in rows], "task": ["organic"] * len(rows),
        "action": ["save"] * len(rows), "timestamp": pa.array([ts] * len(rows), pa.timestamp("us", tz="UTC")),
    }), root / "engagements.parquet", "engagements")
    pq.write_table(pa.table({"query": [r[0] for r in rows for _ in range(2)],
                             "pin_id": [p for r in rows for p in (r[1], "p0")],
                             "grade": [g for _ in rows for g in (3.0, 2.0)]}), root / "labels.parquet")
    return root


def test_training_with_logq_and_distillation_runs_and_lowers_the_loss(tmp_path: Path, tiny_bert_dir: Path) -> None:
    data = _dataset(tmp_path / "data")
    result = train(TrainConfig(
        data=str(data), out=str(tmp_path / "run"), base_model=str(tiny_bert_dir), batch_size=8, lr=1e-3,
        readout_lr=1e-2, temperature=0.1, epochs=100, max_per_pin=None, log_every=5, progress=False, threads=1,
        max_steps=30, random_negatives=3, logq_correction="sketch", logq_sketch_width=64,
        teacher_labels=str(data / "labels.parquet"), distill_weight=1.0, distill_temperature=0.5,
        teacher_false_negative_grade=2.9))
    losses = [loss for _, loss in result.history]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < losses[0], losses


@pytest.mark.parametrize(("args", "message"), [
    (["--distill-weight", "1"], "--distill-weight needs --teacher-labels"),
    (["--teacher-false-negative-grade", "2.5"], "--teacher-false-negative-grade needs --teacher-labels"),
    (["--teacher-labels", "x", "--distill-temperature", "0"], "--distill-temperature must be > 0"),
    (["--logq-correction", "sometimes"], "invalid choice"),
])
def test_option_errors_name_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                     message: str) -> None:
    from encoders.cli.main import main

    try:
        rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), *args])
    except SystemExit as exc:  # argparse's own errors (choices)
        rc = exc.code
    assert rc == 2 and message in capsys.readouterr().err
