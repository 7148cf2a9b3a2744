"""bench/train_paired.py and bench/teacher_tower_agreement.py on hand-made inputs: golden values
worked out by hand, and clear errors for bad input."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from encoders.train.distill import TeacherLabels

ROOT = Path(__file__).resolve().parents[2]


def _bench(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_bench", ROOT / "bench" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_run_hits_counts_each_querys_pairs_in_its_top_k() -> None:
    paired = _bench("train_paired")
    pins = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], dtype=np.float32)
    queries = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    # query 0 ranks p0 (1.0), p2 (0.6), p1 (0.0); query 1 ranks p1 (1.0), p2 (0.8), p0 (0.0)
    pair_query, pair_pin = np.array([0, 0, 1]), np.array([2, 1, 1])  # ranks 2, 3 (beyond k = 2), 1
    hits = paired.run_hits(queries, pins, pair_query, pair_pin, ks=(1, 2))
    assert hits[1][0].tolist() == [0.0, 1.0] and hits[1][1].tolist() == [2.0, 1.0]
    assert hits[2][0].tolist() == [1.0, 1.0] and hits[2][1].tolist() == [2.0, 1.0]


def test_paired_records_golden() -> None:
    paired = _bench("train_paired")
    den = np.array([2.0, 2.0, 4.0])
    hits = {
        "ref": {10: (np.array([0.0, 1.0, 1.0]), den), 100: (np.array([2.0, 1.0, 3.0]), den)},
        "run": {10: (np.array([1.0, 2.0, 3.0]), den), 100: (np.array([2.0, 2.0, 4.0]), den)},
    }
    (rec,) = paired.paired_records(hits, "ref", ["run"], "validation")
    assert list(rec) == ["split", "ref", "run", "recall@10", "ref_recall@10", "delta@10",
                         "recall@100", "ref_recall@100", "delta@100"]
    assert (rec["split"], rec["ref"], rec["run"]) == ("validation", "ref", "run")
    # @10: 6/8 vs 2/8; every query's difference is half its pairs, so every replicate's Δ is 0.5
    assert (rec["recall@10"], rec["ref_recall@10"], rec["delta@10"]) == (0.75, 0.25, [0.5, 0.5, 0.5])
    # @100: 8/8 vs 6/8, Δ 0.25; a replicate's Δ lies between query 0's 0/2 and query 1's 1/2
    assert (rec["recall@100"], rec["ref_recall@100"]) == (1.0, 0.75)
    diff, low, high = rec["delta@100"]
    assert diff == 0.25 and 0.0 <= low <= diff <= high <= 0.5


def test_paired_records_names_a_run_without_hits() -> None:
    paired = _bench("train_paired")
    hits = {"ref": {10: (np.ones(2), np.ones(2))}}
    with pytest.raises(ValueError, match=r"no hits for run\(s\) 'runs/missing'; known: 'ref'"):
        paired.paired_records(hits, "ref", ["runs/missing"], "eval", ks=(10,))


@pytest.mark.parametrize("name", ["train_paired", "teacher_tower_agreement"])
def test_cli_rejects_a_directory_that_is_not_a_run(name: str, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "base-s0"
    run.mkdir()
    (run / "tower_config.json").write_text("{}")
    with pytest.raises(SystemExit) as exc:
        _bench(name).main([str(run), str(tmp_path / "nope")])
    assert exc.value.code == 2
    assert f"run {tmp_path / 'nope'}: no tower_config.json" in capsys.readouterr().err


def test_teacher_agreement_golden() -> None:
    agreement = _bench("teacher_tower_agreement")
    labels = TeacherLabels(by_query={
        "a": (np.array([0, 1]), np.array([1.0, 1.0], dtype=np.float32)),  # teacher (1/2, 1/2)
        "b": (np.array([0, 1]), np.array([0.0, np.log(3.0)], dtype=np.float32)),  # teacher (1/4, 3/4)
        "c": (np.array([2]), np.array([2.0], dtype=np.float32)),  # one pin: KL 0, agrees (padding)
    })
    targets = labels.targets(["a", "b", "c"], temperature=1.0)
    pins = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    q = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # tower (σ(1), σ(−1)) for a and b
    kl, agree = agreement.teacher_agreement(q, pins, targets, tau=1.0)
    # KL_a = ½ ln(½/σ(1)) + ½ ln(½/σ(−1)) = 0.1201145, KL_b = ¼ ln(¼/σ(1)) + ¾ ln(¾/σ(−1)) = 0.5009265
    assert kl == pytest.approx((0.12011450695827758 + 0.5009265428994146) / 3, abs=1e-6)
    assert agree == pytest.approx(2 / 3)  # b: the teacher prefers pin 1, the tower pin 0
    assert agreement.format_line("r", 3, kl, agree) == (
        "r: validation queries 3, KL(T=0.05, tau=0.026) 0.2070, top-1 agreement 0.667")
