"""The teacher end to end on a tiny random BERT: train, calibrate, export, score torch-free; errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from encoders.cli.main import main
from encoders.data.synthetic import generate_synthetic
from encoders.relevance.calibration import calibration_report, fit_isotonic, pava
from encoders.relevance.pairs import GradeScale, GradeScaleError, load_judged_pairs
from encoders.relevance.teacher_model import TeacherModelError, load_classifier
from encoders.relevance.teacher_train import step_groups, validation_figures
from encoders.runtime.cross_encoder import CrossEncoderScorer, PairTokenizer, calibrate


@pytest.fixture(scope="module")
def judged_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("judged")
    generate_synthetic(d, n_pins=300, n_queries=120, seed=3, judgments="all")
    return d


@pytest.fixture(scope="module")
def teacher_dir(judged_dir: Path, tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("teacher")
    rc = main(["relevance", "train-teacher", "--data", str(judged_dir), "--out", str(out), "--base-model",
               str(tiny_bert_dir), "--epochs", "3", "--batch-pairs", "32", "--lr", "3e-3", "--max-length", "32",
               "--threads", "1", "--no-progress"])
    assert rc == 0
    return out


def test_steps_pack_small_queries_whole_and_split_large_ones() -> None:
    # query 0 has 370 judged pairs (a "judge everything" dataset), queries 1-20 have 5 each
    groups = [np.arange(370)] + [np.arange(370 + 5 * i, 375 + 5 * i) for i in range(20)]
    steps = step_groups(groups, 64, np.random.default_rng(0))
    rows = np.concatenate(steps)
    assert sorted(rows.tolist()) == list(range(470))  # every pair once per epoch
    assert max(s.size for s in steps) < 2 * 64  # before: the 370-pair query was one step
    big = [s[s < 370] for s in steps if (s < 370).any()]
    assert len(big) == 6 and all(61 <= b.size <= 62 for b in big)  # 370 = 6 parts of 61-62
    for s in steps:  # a small query is never split across steps
        small = s[s >= 370]
        assert all(((small - 370) // 5 == q).sum() in (0, 5) for q in range(20))
    again = step_groups(groups, 64, np.random.default_rng(0))
    assert all(np.array_equal(a, b) for a, b in zip(steps, again, strict=True))
    # no query larger than the step: the packing (and its random draws) is what it always was
    small_only = groups[1:]
    order = np.random.default_rng(1).permutation(20)
    packed = step_groups(small_only, 64, np.random.default_rng(1))
    assert np.array_equal(np.concatenate(packed), np.concatenate([small_only[i] for i in order]))


def test_pava_matches_hand_worked_values() -> None:
    # 1, 3, 2, 4 -> the violating pair (3, 2) pools to 2.5
    assert pava(np.array([1.0, 3.0, 2.0, 4.0])).tolist() == [1.0, 2.5, 2.5, 4.0]
    # weights: (3 w=1, 1 w=3) pools to (3 + 3) / 4 = 1.5
    assert pava(np.array([3.0, 1.0]), np.array([1.0, 3.0])).tolist() == [1.5, 1.5]


def test_isotonic_knots_are_monotone_and_reduce_error() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(size=2000)
    grades = 1 + 2 * p**2 + rng.normal(0, 0.1, size=p.size)  # convex truth: the linear map is biased
    knots = fit_isotonic(p, grades, 1.0, 3.0)
    assert np.all(np.diff(knots["x"]) > 0) and np.all(np.diff(knots["y"]) >= 0)
    before = calibration_report(calibrate(p, {}, 1.0, 3.0), grades)
    after = calibration_report(calibrate(p, knots, 1.0, 3.0), grades)
    assert after.mae < before.mae and after.ece < 0.5 * before.ece
    assert sum(b["count"] for b in after.bins) == p.size


def test_grade_scale_errors_name_file_and_row(judged_dir: Path) -> None:
    with pytest.raises(GradeScaleError, match=r"judgments.parquet.*row \d+.*outside the declared scale 1:2"):
        load_judged_pairs(judged_dir, GradeScale.parse("1:2"))
    with pytest.raises(ValueError, match="LO:HI"):
        GradeScale.parse("1-5")
    pairs = load_judged_pairs(judged_dir)
    assert pairs.scale.levels == (1.0, 2.0, 3.0)
    assert set(pairs.split) == {"train", "validation", "eval"}


def test_not_a_sequence_classifier_is_a_clear_error(tmp_path: Path) -> None:
    d = tmp_path / "clip"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "clip_vision_model"}))
    (d / "vocab.txt").write_text("[PAD]\n")
    with pytest.raises(TeacherModelError, match=r"clip_vision_model.*sequence classifier"):
        load_classifier(d)


def test_train_teacher_learns_calibrates_and_exports(teacher_dir: Path, judged_dir: Path) -> None:
    meta = json.loads((teacher_dir / "teacher.json").read_text())
    val = meta["result"]["validation"]
    assert meta["result"]["final_loss"] < meta["result"]["initial_loss"]
    assert val["queries"] > 0 and -1.0 <= val["kendall_tau"] <= 1.0
    assert val["calibration"]["mae"] <= val["calibration_uncalibrated"]["mae"] + 1e-9
    manifest = json.loads((teacher_dir / "onnx" / "cross_encoder.json").read_text())
    assert manifest["parity"]["fp32_max_abs_diff"] < 1e-3
    assert manifest["grade_scale"]["lowest"] == 1.0 and manifest["grade_scale"]["highest"] == 3.0
    card = (teacher_dir / "MODEL_CARD.md").read_text()
    assert f"Kendall tau (mean over {val['queries']} queries" in card and manifest["model_version"] in card
    scorer = CrossEncoderScorer(teacher_dir, variant="fp32", threads=1)
    pairs = load_judged_pairs(judged_dir).subset("validation")
    grades = scorer.score(pairs.queries, pairs.texts)
    assert grades.shape == (len(pairs),) and grades.min() >= 1.0 and grades.max() <= 3.0
    # a random tiny BERT cannot generalise from 100 queries, but it must fit its training pairs
    train = load_judged_pairs(judged_dir).subset("train")
    assert validation_figures(train, scorer.score(train.queries, train.texts))["kendall_tau"] > 0.05
    # batching and length sorting do not change a pair's score
    one = np.concatenate([scorer.logits([q], [t]) for q, t in zip(pairs.queries[:7], pairs.texts[:7], strict=True)])
    np.testing.assert_allclose(one, scorer.logits(pairs.queries[:7], pairs.texts[:7]), atol=1e-5)


def test_pair_tokenizer_matches_transformers_on_the_packaged_model() -> None:
    from transformers import AutoTokenizer

    from encoders.model.base_model import default_base_model_dir

    d = default_base_model_dir()
    tok = PairTokenizer(d / "tokenizer.json", max_length=12)
    queries, texts = ["angle bracket", "led"], ["simpson strong-tie 12-gauge angle with many more words here", "bulb"]
    batch = tok(queries, texts)
    ref = AutoTokenizer.from_pretrained(str(d))(queries, texts, padding=True, truncation=True, max_length=12,
                                                return_tensors="np")
    assert batch.input_ids.shape == (2, 12)  # truncated to max_length, padded to the longest row
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(getattr(batch, name), ref[name])
    assert batch.token_type_ids[0, -1] == 1  # the text segment is marked


def test_label_writes_judged_and_candidate_pairs(teacher_dir: Path, judged_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.parquet"
    assert main(["relevance", "label", "--teacher", str(teacher_dir), "--data", str(judged_dir), "--out", str(out),
                 "--candidates", "0", "--threads", "1", "--no-progress"]) == 0
    t = pd.read_parquet(out)
    assert list(t.columns) == ["query", "pin_id", "grade", "judged_grade", "split"]
    assert set(t["split"]) <= {"train", "validation"} and t["judged_grade"].notna().all()
    assert t["grade"].between(1.0, 3.0).all()
    capped = tmp_path / "capped.parquet"
    assert main(["relevance", "label", "--teacher", str(teacher_dir), "--data", str(judged_dir), "--out", str(capped),
                 "--candidates", "0", "--judged-per-query", "2", "--threads", "1", "--no-progress"]) == 0
    c = pd.read_parquet(capped)
    assert c.groupby("query").size().max() == 2 and set(c["query"]) == set(t["query"])
    assert set(zip(c["query"], c["pin_id"], strict=True)) <= set(zip(t["query"], t["pin_id"], strict=True))


def test_cli_errors_are_one_line(judged_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relevance", "train-teacher", "--data", str(judged_dir), "--out", str(tmp_path), "--lr", "-1"]) == 2
    assert "invalid teacher option lr" in capsys.readouterr().err
    assert main(["relevance", "train-teacher", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "judgments.parquet" in capsys.readouterr().err


def test_abtest_label_grades_served_results_with_the_teacher(teacher_dir: Path, judged_dir: Path,
                                                             tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pairs = load_judged_pairs(judged_dir).subset("eval")
    q = pairs.queries[0]
    served = tmp_path / "served.parquet"
    pq.write_table(pa.table({"arm": ["control", "treatment"], "query": [q, q],
                             "pin_ids": [pairs.pin_ids[:3], pairs.pin_ids[1:4]]}), served)
    out = tmp_path / "model_labels.parquet"
    assert main(["abtest", "label", "--served", str(served), "--data", str(judged_dir), "--teacher", str(teacher_dir),
                 "--out", str(out), "--threads", "1", "--no-progress"]) == 0
    t = pd.read_parquet(out)
    assert t["pin_id"].tolist() == pairs.pin_ids[:4]
    want = CrossEncoderScorer(teacher_dir, threads=1).score([q] * 4, pairs.texts[:4])
    np.testing.assert_allclose(t["grade"].to_numpy(), want, rtol=1e-6)


def test_validation_sample_keeps_whole_queries_up_to_the_cap(judged_dir: Path) -> None:
    from encoders.relevance.teacher_train import validation_sample

    pairs = load_judged_pairs(judged_dir)
    full = pairs.subset("validation")
    assert validation_sample(pairs, None) is not None and len(validation_sample(pairs, None)) == len(full)
    cap = len(full) // 2
    sample = validation_sample(pairs, cap, seed=3)
    assert 0 < len(sample) <= cap and set(sample.split) == {"validation"}
    sizes = {q: full.queries.count(q) for q in set(sample.queries)}
    assert all(sample.queries.count(q) == n for q, n in sizes.items())  # no query is cut
    assert validation_sample(pairs, cap, seed=3).queries == sample.queries  # seeded
