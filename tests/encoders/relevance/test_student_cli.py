"""``searchsage relevance pin-stats`` / ``train-student``: help texts, the happy path without Redis
(``--bundle``), and user errors as one line with exit status 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from relevance_helpers import make_dataset, make_labels

from encoders.cli.main import main

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("student-cli")
    ds = make_dataset(base / "ds", n_pins=300, n_queries=100)
    return {"base": base, "ds": ds, "labels": make_labels(ds, base / "labels.parquet")}


@pytest.mark.parametrize("command", ["pin-stats", "train-student"])
def test_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["relevance", command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--data" in out and ("train-split" in out or "validation" in out)


@pytest.mark.slow
def test_train_student_with_a_bundle(data: dict, tiny_onnx_bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = data["base"] / "student"
    args = ["relevance", "train-student", "--labels", str(data["labels"]), "--data", str(data["ds"]),
            "--bundle", str(tiny_onnx_bundle), "--out", str(out), "--family", "lightgbm", "--max-rounds", "40",
            "--threads", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "student: lightgbm" in printed and "nDCG@10 teacher" in printed
    manifest = json.loads((out / "student.json").read_text())
    assert manifest["training"]["source"].startswith("bundle:") and manifest["embedding_dim"] == 32
    card = (out / "MODEL_CARD.md").read_text()
    assert "| family | lightgbm |" in card and f"{manifest['training']['train_rows']} / " in card
    assert main(args) == 0  # re-training into a student directory overwrites it
    from encoders.relevance.feature_sources import DatasetFeatureSource
    from encoders.relevance.student import StudentScorer

    frame = pd.read_parquet(data["labels"]).head(50)
    texts = DatasetFeatureSource(data["ds"], bundle=tiny_onnx_bundle).pin_texts(frame["pin_id"].tolist())
    scorer = StudentScorer(out, threads=1)  # no source: rebuilt from the manifest (dataset + bundle)
    grades = scorer.score(frame["query"].tolist(), frame["pin_id"].tolist(), texts)
    assert isinstance(scorer.source, DatasetFeatureSource) and grades.shape == (50,) and (grades >= 1).all()


def test_user_errors_are_one_line(data: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds, labels = str(data["ds"]), str(data["labels"])

    def fails(args: list[str], *needles: str) -> None:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and err.startswith("searchsage: error:")
        for n in needles:
            assert n in err, err

    fails(["relevance", "pin-stats", "--data", ds, "--repo", str(tmp_path)], "feature_store.yaml")
    fails(["relevance", "pin-stats", "--data", str(tmp_path / "nope"), "--repo", str(tmp_path)], "not a directory")
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    fails(["relevance", "pin-stats", "--data", str(tmp_path), "--repo", str(repo)], "engagements.parquet",
          "file not found")
    fails(["relevance", "pin-stats", "--data", ds, "--repo", str(repo), "--smoothing", "0"], "--smoothing")
    train = ["relevance", "train-student", "--data", ds, "--bundle", str(tmp_path)]
    fails([*train, "--labels", str(tmp_path / "x.parquet"), "--out", str(tmp_path / "s")], "--labels", "not found")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    fails([*train, "--labels", labels, "--out", str(tmp_path / "busy")], "not a student directory")
    fails([*train, "--labels", labels, "--out", str(tmp_path / "s"), "--grade-scale", "3"], "--grade-scale")
    frame = pd.read_parquet(labels)
    frame.loc[2, "split"] = "eval"
    frame.to_parquet(tmp_path / "eval.parquet", index=False)
    fails([*train, "--labels", str(tmp_path / "eval.parquet"), "--out", str(tmp_path / "s")],
          "eval.parquet", "column 'split', row 2")
    fails([*train, "--labels", labels, "--out", str(tmp_path / "s")], "bundle")  # tmp_path is no bundle
    fails(["relevance", "train-student", "--data", ds, "--run", str(tmp_path), "--labels", labels,
           "--out", str(tmp_path / "s")], "tower_config.json")
    fails(["rank", "oak", "--repo", str(repo), "--rerank", str(tmp_path)], "student.json")
