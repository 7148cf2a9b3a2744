"""The evaluation report: every system on every corpus, paired CIs, coverage, conditional retrieval, files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from encoders.homefeed.config import HomefeedEvalConfig
from encoders.homefeed.dataset import load_homefeed
from encoders.homefeed.evaluate import evaluate_homefeed, mean_recent_vectors
from encoders.homefeed.report import write_report
from encoders.homefeed.retrieval import EvalTargets
from encoders.homefeed.run import load_run


@pytest.fixture(scope="module")
def report(tiny_homefeed: Path, tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("homefeed_eval")
    r = evaluate_homefeed(HomefeedEvalConfig(data=str(tiny_homefeed), run=str(tiny_run), out=str(out),
                                             bootstrap_reps=100, threads=1, progress=False, corpus_size=150))
    write_report(r, out)
    return {"report": r, "out": out}


def test_every_system_on_every_corpus_with_recall_monotone_in_k(report: dict) -> None:
    r = report["report"]
    assert set(r["systems"]) == {"tower", "no_id_embeddings", "no_feature_crossing", "mean_recent", "popularity"}
    assert r["corpora"]["all"]["size"] == 480 and r["corpora"]["decayed"]["size"] == 150
    assert r["corpora"]["all"]["coverage"]["overall"] == 1.0
    assert 0 < r["corpora"]["decayed"]["coverage"]["overall"] < 1
    assert set(r["pairs"]) >= {"overall", "closeup", "click", "save"}
    for per in r["systems"].values():
        for corpus in ("all", "decayed", "count"):
            rec = per[corpus]["overall"]
            assert 0 <= rec[10] <= rec[50] <= rec[100] <= 1
            # a small index can only find the pins it holds
            assert rec[100] <= r["corpora"][corpus]["coverage"]["overall"] + 1e-9


def test_comparisons_are_paired_cis_of_the_recall_differences(report: dict) -> None:
    r = report["report"]
    pairs = {(c["b"], c["corpus"]) for c in r["comparisons"]}
    assert ("mean_recent", "all") in pairs and ("no_id_embeddings", "decayed") in pairs
    for c in r["comparisons"]:
        for k in ("10", "50", "100"):
            ci = c["ci"][k]
            expected = r["systems"]["tower"][c["corpus"]]["overall"][int(k)] - \
                r["systems"][c["b"]][c["corpus"]]["overall"][int(k)]
            assert ci["diff"] == pytest.approx(expected)
            assert ci["low"] <= ci["diff"] <= ci["high"] or ci["low"] == ci["high"]
    assert {(e["system"], e["a"], e["b"]) for e in r["corpus_effect"]} >= {("tower", "decayed", "all")}
    cond = r["conditional"]
    assert cond["pairs"] <= r["pairs"]["overall"] and cond["comparison"]["10"]["reps"] > 0


def test_report_files(report: dict) -> None:
    js = json.loads((report["out"] / "eval_report.json").read_text())
    md = (report["out"] / "eval_report.md").read_text()
    assert js["users"] == report["report"]["users"]
    assert "| mean_recent |" in md and "Conditional retrieval" in md and "decayed − all" in md


def test_mean_recent_baseline_is_the_normalised_mean(tiny_homefeed: Path, tiny_run: Path) -> None:
    data, run = load_homefeed(tiny_homefeed), load_run(tiny_run)
    targets = EvalTargets.build(data.log, run.split)
    got = mean_recent_vectors(data, targets, 4)
    u = 0
    start = data.log.offsets[targets.users[u]]
    pins = data.log.pins[start + max(0, targets.n_before[u] - 4) : start + targets.n_before[u]]
    mean = data.pin_matrix[pins].mean(axis=0)
    assert np.allclose(got[u], mean / np.linalg.norm(mean), atol=1e-6)


def test_bad_eval_options_name_the_flag(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--corpus-size must be >= 1"):
        HomefeedEvalConfig(data="d", run="r", out="o", corpus_size=0)
    with pytest.raises(ValueError, match="--half-life-days must be > 0"):
        HomefeedEvalConfig(data="d", run="r", out="o", half_life_days=0)
