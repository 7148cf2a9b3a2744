"""The student: label checks, training per family, selection on validation, the saved directory and
the scorer (same grades as at training, fast, clear errors)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from relevance_helpers import HashSource, make_dataset, make_labels

from encoders.data.schema import DataValidationError
from encoders.relevance.features import FeatureSourceError
from encoders.relevance.student import (
    MANIFEST,
    StudentConfig,
    StudentError,
    StudentScorer,
    ndcg_at_k,
    train_student,
)
from encoders.relevance.student_data import read_teacher_labels
from encoders.relevance.student_models import (
    RANK_TIE_BREAK,
    FamilyOptions,
    apply_rank_calibration,
    rank_calibration,
)

FAST = FamilyOptions(threads=1, max_rounds=80, epochs=4)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("student")
    ds = make_dataset(base / "ds")
    labels = make_labels(ds, base / "labels.parquet")
    return {"base": base, "ds": ds, "labels": labels, "frame": pd.read_parquet(labels), "source": HashSource(ds)}


@pytest.fixture(scope="module")
def trained(data: dict) -> dict:
    out = data["base"] / "auto"
    report = train_student(data["labels"], data["ds"], data["source"], out, StudentConfig(options=FAST))
    return {"out": out, "report": report}


def test_rank_scores_get_calibrated_grades_in_the_same_order() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(size=4000) * 3
    # most candidates low-grade, grade rises steeply with the score: a line fits this badly
    unit = np.clip(1 / (1 + np.exp(-(raw - 3))) + rng.normal(0, 0.05, raw.size), 0, 1)
    cal = rank_calibration(raw, unit)
    iso = apply_rank_calibration(raw, cal)
    assert np.array_equal(np.argsort(iso, kind="stable"), np.argsort(raw, kind="stable"))  # order kept, no ties
    a, b = np.polyfit(raw, unit, 1)
    line = apply_rank_calibration(raw, (a, b))  # what students saved before used
    np.testing.assert_allclose(line, a * raw + b)
    assert np.abs(iso - unit).mean() < 0.5 * np.abs(line - unit).mean()
    assert iso.min() >= -RANK_TIE_BREAK and iso.max() <= 1 + RANK_TIE_BREAK


def test_ndcg_ranks_within_queries() -> None:
    g = np.array([0, 0, 0, 1, 1])
    grades = np.array([3.0, 1.0, 2.0, 1.0, 1.0])
    assert ndcg_at_k(g, grades, np.array([3, 1, 2, 0, 0.0]), lowest=1.0) == pytest.approx(1.0)
    worst = ndcg_at_k(g, grades, np.array([1, 3, 2, 0, 0.0]), lowest=1.0)  # query 1 has no gain: skipped
    # exponential gain 2^(2(g-1)) - 1: grades 3, 2, 1 -> 15, 3, 0
    assert worst == pytest.approx((3 / np.log2(3) + 15 / np.log2(4)) / (15 + 3 / np.log2(3)))


def test_auto_fits_every_family_and_keeps_the_best(data: dict, trained: dict) -> None:
    report, out = trained["report"], trained["out"]
    fams = {r.family: r for r in report.results}
    assert set(fams) == {"lightgbm", "lightgbm_rank", "mlp"}
    best = max(report.results, key=lambda r: r.validation["ndcg10_teacher"])
    assert report.family == best.family
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["family"] == report.family and manifest["feature_names"] == report.feature_names
    assert manifest["grade_scale"]["lowest"] == 1.0 and manifest["grade_scale"]["highest"] == 3.0
    assert set(manifest["training"]["families"]) == set(fams)
    assert (out / manifest["model"]["file"]).is_file() and (out / "projection.npz").is_file()
    frame = data["frame"]
    assert report.train_rows == (frame["split"] == "train").sum() and report.validation_rows == (
        frame["split"] == "validation").sum()
    # every family beats a random order of the validation candidates against the human grades
    val = frame[frame["split"] == "validation"]
    judged = val[val["judged_grade"].notna()]
    rng = np.random.default_rng(0)
    random = ndcg_at_k(judged["query"].to_numpy(), judged["judged_grade"].to_numpy(), rng.random(len(judged)), 1.0)
    for r in report.results:
        assert r.validation["ndcg10_judged"] > random + 0.05, (r.family, r.validation, random)


@pytest.mark.parametrize("family", ["lightgbm", "lightgbm_rank", "mlp"])
def test_saved_student_scores_like_the_trained_one(data: dict, family: str) -> None:
    out = data["base"] / family
    report = train_student(data["labels"], data["ds"], data["source"], out,
                           StudentConfig(family=family, options=FAST))
    assert report.family == family and [r.family for r in report.results] == [family]
    val = data["frame"][data["frame"]["split"] == "validation"]
    scorer = StudentScorer(out, data["source"], threads=1)
    texts = [data["source"].texts[p] for p in val["pin_id"]]
    grades = scorer.score(val["query"].tolist(), val["pin_id"].tolist(), texts)
    assert grades.dtype == np.float64 and grades.shape == (len(val),)
    assert ((grades >= 1.0) & (grades <= 3.0)).all() and np.ptp(grades) > 0
    rmse = float(np.sqrt(np.mean((grades - val["grade"].to_numpy()) ** 2)))
    assert rmse == pytest.approx(report.results[0].validation["rmse_teacher"], rel=1e-6)  # same as at training
    # order-independent: a shuffled batch gives the same grade per pair
    perm = np.random.default_rng(1).permutation(len(val))
    shuffled = scorer.score([val["query"].iloc[i] for i in perm], [val["pin_id"].iloc[i] for i in perm],
                            [texts[i] for i in perm])
    np.testing.assert_allclose(shuffled, grades[perm], rtol=1e-6)


def test_scoring_is_batched_and_fast(data: dict, trained: dict) -> None:
    frame = pd.concat([data["frame"]] * 6, ignore_index=True)  # ~22k pairs
    source = data["source"]
    scorer = StudentScorer(trained["out"], source, threads=1)
    texts = [source.texts[p] for p in frame["pin_id"]]
    source.calls.clear()
    grades = scorer.score(frame["query"].tolist(), frame["pin_id"].tolist(), texts)
    # one read of each kind for the whole batch (speed itself is measured by `relevance evaluate`'s pairs/s)
    assert len(grades) == len(frame) and [c[0] for c in source.calls] == ["query", "pin", "stats"]


def test_label_file_errors_name_file_column_row(data: dict, tmp_path: Path) -> None:
    frame = data["frame"]

    def write(df: pd.DataFrame) -> Path:
        path = tmp_path / "bad.parquet"
        df.to_parquet(path, index=False)
        return path

    with pytest.raises(DataValidationError, match="column 'grade'"):
        read_teacher_labels(write(frame.drop(columns="grade")))
    bad = frame.copy()
    bad.loc[4, "grade"] = np.nan
    with pytest.raises(DataValidationError, match="column 'grade', row 4: teacher grade must be finite"):
        read_teacher_labels(write(bad))
    from encoders.relevance.pairs import split_of

    ev = next(q for q in (f"held out {i}" for i in range(100)) if split_of(q) == "eval")
    bad = frame.copy()
    bad.loc[7, ["query", "split"]] = [ev, "eval"]
    with pytest.raises(DataValidationError, match=r"column 'split', row 7: split 'eval'.*must not train"):
        read_teacher_labels(write(bad))
    bad = frame.copy()
    bad.loc[3, "split"] = "validation" if bad.loc[3, "split"] == "train" else "train"
    with pytest.raises(DataValidationError, match=r"row 3: query .* belongs to the"):
        read_teacher_labels(write(bad))
    bad = frame.copy()
    bad.loc[5, "pin_id"] = "no-such-pin"
    with pytest.raises(DataValidationError, match="column 'pin_id', row 5: pin_id 'no-such-pin'"):
        train_student(write(bad), data["ds"], data["source"], tmp_path / "s", StudentConfig(family="lightgbm"))


def test_scorer_errors(data: dict, trained: dict, tmp_path: Path) -> None:
    with pytest.raises(StudentError, match="train-student"):
        StudentScorer(tmp_path)
    scorer = StudentScorer(trained["out"])  # trained on a source the manifest cannot rebuild
    with pytest.raises(StudentError, match="no feature source given"):
        scorer.score(["q"], ["p"], ["t"])
    pid = next(iter(data["source"].texts))
    with pytest.raises(FeatureSourceError, match=r"32-d vectors but the student .* 16-d"):
        StudentScorer(trained["out"], HashSource(data["ds"], dim=32)).score(["oak"], [pid], ["oak"])
    with pytest.raises(ValueError, match="one of each per pair"):
        StudentScorer(trained["out"], data["source"]).score(["a", "b"], [pid], ["t"])


def test_stored_query_vectors_read_once_and_score_the_same(data: dict, trained: dict) -> None:
    from encoders.relevance.feature_sources import StoredQueryVectors

    frame, source = data["frame"], data["source"]
    texts = [source.texts[p] for p in frame["pin_id"]]
    queries, pins = frame["query"].tolist(), frame["pin_id"].tolist()
    direct = StudentScorer(trained["out"], source, threads=1).score(queries, pins, texts)
    stored = StoredQueryVectors(source)
    source.calls.clear()
    stored.prefetch(queries)
    stored.prefetch(queries[:5])  # already held: no second read
    assert [c[0] for c in source.calls] == ["query"]
    source.calls.clear()
    grades = StudentScorer(trained["out"], stored, threads=1).score(queries, pins, texts)
    assert "query" not in [c[0] for c in source.calls]  # scoring reads pins and stats only
    np.testing.assert_array_equal(grades, direct)
