"""End-to-end training on a tiny random BERT: loss falls, run directory, exact resume, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_dataset import write_tiny_dataset

from encoders.model.tower import QueryTower
from encoders.train.config import TrainConfig
from encoders.train.trainer import TrainDataError, train

WORDS = ["chair", "table", "lamp", "door", "window", "floor", "tile", "paint", "brush", "drill", "saw", "hammer", "nail", "screw", "shelf", "sink"]
COLORS = ["red", "blue", "green", "black", "white", "steel", "wood", "oak"]
JUDGED = [("red chair", "p1", 1.0)]


def _dataset(root: Path, dim: int, with_embedding: bool = True) -> Path:
    return write_tiny_dataset(root, WORDS, COLORS, JUDGED, dim=dim, with_embedding=with_embedding)


def _config(data: Path, out: Path, base: Path, **kw: object) -> TrainConfig:
    base_kw: dict[str, object] = dict(
        data=str(data), out=str(out), base_model=str(base), batch_size=16, lr=1e-3, readout_lr=1e-2,
        temperature=0.1, epochs=100, max_per_pin=None, log_every=5, progress=False, threads=1,
    )
    base_kw.update(kw)
    return TrainConfig(**base_kw)  # type: ignore[arg-type]


def test_loss_falls_and_run_directory_is_complete(tmp_path: Path, tiny_bert_dir: Path) -> None:
    data = _dataset(tmp_path / "data", dim=16)  # D != hidden (32) → random readout
    result = train(_config(data, tmp_path / "run", tiny_bert_dir, max_steps=60, hard_negatives=2,
                           hard_negative_window=(0, 8), random_negatives=4, queue_size=16,
                           hard_negative_cache=str(tmp_path / "shared" / "hn.npz")))
    first, last = result.history[0][1], result.history[-1][1]
    assert result.steps == 60 and result.stopped_by == "max_steps"
    assert last < 0.7 * first, result.history
    run = tmp_path / "run"
    for name in ("tower_config.json", "tower.pt", "checkpoint.pt", "train_log.jsonl", "train_summary.json",
                 "hard_negatives.npz"):
        assert (run / name).exists(), name
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["steps"] == 60 and summary["readout_init"] == "random" and summary["dim"] == 16
    log = [json.loads(x) for x in (run / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(5, 61, 5))
    assert (tmp_path / "shared" / "hn.npz").exists()
    tower = QueryTower.load(run)
    assert tower.out_dim == 16
    with pytest.raises(TrainDataError, match="already holds a finished run"):
        train(_config(data, tmp_path / "run", tiny_bert_dir, max_steps=1))


def test_resume_continues_exactly_at_the_saved_step(tmp_path: Path, tiny_bert_dir: Path) -> None:
    data = _dataset(tmp_path / "data", dim=32)
    kw = dict(schedule_steps=8, learn_temperature=True, random_negatives=-1, queue_size=8, pseudo_queries=4,
              pseudo_query_variants=True, mask_pseudo_query_matches=True)
    full = train(_config(data, tmp_path / "full", tiny_bert_dir, max_steps=8, **kw))
    half = train(_config(data, tmp_path / "half", tiny_bert_dir, max_steps=4, **kw))
    assert half.steps == 4
    ckpt = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=False)
    assert ckpt["step"] == 4 and ckpt["sampler"]["batch_index"] > 0
    resumed = train(_config(data, tmp_path / "half", tiny_bert_dir, max_steps=8, resume=True, **kw))
    assert resumed.steps == 8
    a = torch.load(tmp_path / "full" / "tower.pt", weights_only=True)
    b = torch.load(tmp_path / "half" / "tower.pt", weights_only=True)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert resumed.temperature == pytest.approx(full.temperature)
    steps = [json.loads(x)["step"] for x in (tmp_path / "half" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [4, 5, 8]  # first run logs 4 (its end); the resumed run logs 5 and 8


def test_missing_embeddings_is_a_clear_cli_error(tmp_path: Path, tiny_bert_dir: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.cli.main import main

    data = _dataset(tmp_path / "data", dim=8, with_embedding=False)
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--base-model", str(tiny_bert_dir)])
    err = capsys.readouterr().err
    assert rc == 2 and "no 'embedding' column" in err and "pins.parquet" in err
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "r"), "--batch-size", "1"])
    assert rc == 2 and "--batch-size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0 and "--hard-negatives" in capsys.readouterr().out


def test_cli_trains_a_few_steps(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from encoders.cli.main import main

    data = _dataset(tmp_path / "data", dim=32)
    rc = main(["train", "--data", str(data), "--out", str(tmp_path / "run"), "--base-model", str(tiny_bert_dir),
               "--max-steps", "3", "--batch-size", "8", "--threads", "1", "--no-progress",
               "--pseudo-queries", "4", "--pseudo-query-weight", "0.25", "--mask-similar-pins", "0.95",
               "--pseudo-query-variants", "--mask-pseudo-query-matches"])
    assert rc == 0
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["steps"] == 3 and summary["readout_init"] == "identity"
    cfg = summary["config"]
    assert (cfg["pseudo_queries"], cfg["pseudo_query_weight"], cfg["mask_similar_pins"]) == (4, 0.25, 0.95)
    assert cfg["pseudo_query_variants"] is True and cfg["mask_pseudo_query_matches"] is True


def test_train_layers_freezes_the_lower_encoder(tmp_path: Path, tiny_bert_dir: Path) -> None:
    data = _dataset(tmp_path / "data", dim=32)
    train(_config(data, tmp_path / "run", tiny_bert_dir, max_steps=3, train_layers=1))
    before = QueryTower.load(tmp_path / "run").state_dict()
    from transformers import AutoModel

    base = AutoModel.from_pretrained(str(tiny_bert_dir)).state_dict()
    assert torch.equal(before["encoder.embeddings.word_embeddings.weight"], base["embeddings.word_embeddings.weight"])
    assert torch.equal(before["encoder.encoder.layer.0.output.dense.weight"], base["encoder.layer.0.output.dense.weight"])
    assert not torch.equal(before["encoder.encoder.layer.1.output.dense.weight"], base["encoder.layer.1.output.dense.weight"])
    with pytest.raises(TrainDataError, match="between 0 and 2"):
        train(_config(data, tmp_path / "bad", tiny_bert_dir, max_steps=1, train_layers=5))


def test_row_known_positives_adds_pseudo_query_matches_to_the_last_rows() -> None:
    from encoders.train.step import row_known_positives as _row_known_positives

    known = {"red chair": {0, 3}, "trim kit": {7}}
    assert _row_known_positives(None, ["red chair", "x"], None) is None
    assert _row_known_positives(known, ["red chair", "x"], None) == [{0, 3}, set()]
    rows = _row_known_positives(known, ["red chair", "trim kit", "wall mount"], [{7, 8}, {1, 2}])
    assert rows == [{0, 3}, {7, 8}, {1, 2}]
    assert known["trim kit"] == {7}  # the shared sets are not modified
    assert _row_known_positives(None, ["a", "b"], [{5}]) == [set(), {5}]


def test_interpolate_start_saves_a_weighted_average_with_the_starting_weights(
    tmp_path: Path, tiny_bert_dir: Path
) -> None:
    data = _dataset(tmp_path / "data", dim=32)
    train(_config(data, tmp_path / "start", tiny_bert_dir, max_steps=0))
    start = torch.load(tmp_path / "start" / "tower.pt", weights_only=True)
    train(_config(data, tmp_path / "half", tiny_bert_dir, max_steps=3, interpolate_start=0.5))
    trained = torch.load(tmp_path / "half" / "checkpoint.pt", weights_only=False)["model"]
    saved = torch.load(tmp_path / "half" / "tower.pt", weights_only=True)
    moved = [k for k in saved if not torch.equal(trained[k], start[k])]
    assert moved  # training changed weights, and the saved tower sits halfway
    assert all(torch.allclose(saved[k], (trained[k] + start[k]) / 2, atol=1e-6) for k in saved)


def test_interpolate_start_out_of_range_is_a_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.cli.main import main

    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--interpolate-start", "1.5"])
    assert rc == 2 and "--interpolate-start must be in [0, 1]" in capsys.readouterr().err


def test_bf16_precision_trains_and_saves_float32_weights(tmp_path: Path, tiny_bert_dir: Path) -> None:
    data = _dataset(tmp_path / "data", dim=16)
    result = train(_config(data, tmp_path / "run", tiny_bert_dir, max_steps=40, random_negatives=-1,
                           precision="bf16"))
    assert result.history[-1][1] < 0.7 * result.history[0][1], result.history
    saved = torch.load(tmp_path / "run" / "tower.pt", map_location="cpu", weights_only=True)
    assert {v.dtype for v in saved.values() if v.is_floating_point()} == {torch.float32}
    summary = json.loads((tmp_path / "run" / "train_summary.json").read_text())
    assert summary["config"]["precision"] == "bf16"


def test_unknown_precision_is_a_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--precision", "fp8"])
    assert exc.value.code == 2 and "invalid choice: 'fp8'" in capsys.readouterr().err


def test_average_last_saves_a_second_tower_between_the_tail_weights(tmp_path: Path, tiny_bert_dir: Path) -> None:
    data = _dataset(tmp_path / "data", dim=32)
    train(_config(data, tmp_path / "run", tiny_bert_dir, max_steps=10, average_last=0.5, train_layers=1))
    run = tmp_path / "run"
    summary = json.loads((run / "train_summary.json").read_text())
    assert summary["averaged_steps"] == 6  # after steps 5..10 the progress (step / 10) is >= 0.5
    final = QueryTower.load(run).state_dict()
    averaged = QueryTower.load(run / "average").state_dict()
    moved = [k for k in final if not torch.equal(final[k], averaged[k])]
    assert any(k.startswith("readout") for k in moved)
    assert not any(k.startswith("encoder.embeddings") for k in moved)  # frozen: not averaged, equal
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert ckpt["average"]["steps"] == 6


def test_average_last_out_of_range_is_a_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from encoders.cli.main import main

    rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--average-last", "1"])
    assert rc == 2 and "--average-last must be in [0, 1)" in capsys.readouterr().err
