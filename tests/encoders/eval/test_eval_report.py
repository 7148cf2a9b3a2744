"""End-to-end ``evaluate`` / ``searchsage evaluate`` on a small synthetic dataset with a tiny BERT."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from encoders.cli.main import main
from encoders.data.schema import ENGAGEMENTS, JUDGMENTS, PINS, TIMESTAMP, DatasetPaths, write_table
from encoders.data.split import is_eval_query
from encoders.eval.evalset import EvalInputError, EvalSet, load_eval_set
from encoders.eval.report import EvalReport, _judged_metrics, evaluate

WORDS = [
    *["red", "blue", "green", "black", "white", "steel", "wood", "oak", "pine", "brass", "copper", "chair", "table", "lamp", "door", "window", "floor"],
    *["tile", "paint", "brush", "drill", "saw", "hammer", "nail", "screw", "bolt", "bracket", "angle", "shelf", "cabinet", "sink", "faucet", "toilet"],
]


def _build_dataset(root: Path, tiny_bert_dir: Path, with_embeddings: bool = True) -> Path:
    """80 pins with 3-word titles; queries = 2 title words; judgments for every query."""
    rng = random.Random(0)
    titles = list(dict.fromkeys(" ".join(rng.sample(WORDS, 3)) for _ in range(120)))[:80]
    pin_ids = [f"p{i}" for i in range(len(titles))]
    eng, judg = [], []
    for i, t in enumerate(titles):
        w = t.split()
        for q in (f"{w[0]} {w[1]}", f"{w[1]} {w[2]}", f"{w[2]} {w[0]}"):
            task = "organic" if i % 2 else "shopping"
            eng.append((q, pin_ids[i], task))
            judg += [(q, pin_ids[i], 3.0), (q, pin_ids[(i + 1) % len(titles)], 1.0)]
    assert sum(is_eval_query(q) for q, _, _ in eng) >= 10  # enough held-out queries to measure
    pins = {"pin_id": pin_ids, "text": titles}
    if with_embeddings:
        from encoders.eval.baselines import encode_with_tower, zero_shot_tower

        emb = encode_with_tower(zero_shot_tower(tiny_bert_dir), titles, as_query=False, max_length=64)
        pins["embedding"] = pa.array([row.tolist() for row in emb], pa.list_(pa.float32()))
        (root / "pin_tower.json").parent.mkdir(parents=True, exist_ok=True)
        (root / "pin_tower.json").write_text(
            json.dumps({"source": "computed", "base_model": str(tiny_bert_dir), "pooling": "mean", "dim": 32})
        )
    paths = DatasetPaths(root)
    write_table(pa.table(pins), paths.pins, PINS)
    ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
    write_table(
        pa.table({
            "query": [q for q, _, _ in eng], "pin_id": [p for _, p, _ in eng], "task": [t for _, _, t in eng],
            "action": ["save"] * len(eng), "timestamp": pa.array([ts] * len(eng), TIMESTAMP),
        }),
        paths.engagements, ENGAGEMENTS,
    )
    write_table(
        pa.table({"query": [q for q, _, _ in judg], "pin_id": [p for _, p, _ in judg],
                  "grade": [g for _, _, g in judg]}),
        paths.judgments, JUDGMENTS,
    )
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    return _build_dataset(tmp_path_factory.mktemp("eval-data"), tiny_bert_dir)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """An 'untrained' run: identity readout + mean pooling, i.e. the zero-shot model saved as a run."""
    from encoders.model.tower import QueryTower, TowerConfig

    d = tmp_path_factory.mktemp("run")
    QueryTower(TowerConfig(base_model=str(tiny_bert_dir), pooling="mean", readout_init="identity")).save(d)
    return d


def test_evaluate_all_systems_and_roundtrip(dataset: Path, run_dir: Path, tmp_path: Path) -> None:
    report = evaluate(dataset, run_dir, hnsw=True, out_dir=tmp_path, bootstrap_reps=200)
    names = [s.name for s in report.systems]
    assert names == ["bm25", "zero_shot", "searchsage", "prf", "blend"]
    # queries are title words: BM25 must beat chance by far
    bm25 = report.system("bm25")
    assert bm25.recall[10] > 0.5 and bm25.recall[100] == 1.0
    assert report.index_size == report.n_pins == 80 and report.n_pairs > 0
    assert set(report.task_pairs) == {"organic", "shopping"}
    assert sum(report.task_pairs.values()) == report.n_pairs
    for s in report.systems:  # tasks split the pairs here, so the pair-weighted task recalls give the total
        pooled = sum(s.per_task[t][10] * n for t, n in report.task_pairs.items()) / report.n_pairs
        assert pooled == pytest.approx(s.recall[10])
    # the identity-readout run equals the zero-shot model: same rankings, zero difference
    zs, ss = report.system("zero_shot"), report.system("searchsage")
    assert ss.recall == zs.recall and ss.ndcg == zs.ndcg
    assert "reused" in zs.notes[0]
    assert report.best_baseline == "bm25" and bm25.delta is None
    assert ss.delta is not None and ss.delta.diff == pytest.approx(ss.recall[10] - bm25.recall[10])
    assert ss.hnsw is not None and ss.hnsw["ann_recall"]["10"] > 0.9
    for s in report.systems:
        assert 0.0 <= s.ndcg <= 1.0 and 0.0 <= s.precision <= 1.0
    # written files: JSON round-trips, Markdown holds a row per system
    back = EvalReport.read_json(tmp_path / "eval_report.json")
    assert back == report
    md = (tmp_path / "eval_report.md").read_text()
    for name in names:
        assert f"| {name} | " in md
    assert "Recall@10" in md and "nDCG@10" in md and "P@8" in md and "organic" in md
    assert (run_dir / "eval_report.json").exists() is False  # --out wins over the run dir


def test_prf_system_is_pin_feedback_on_the_tower_queries(dataset: Path, run_dir: Path) -> None:
    from encoders.eval.systems import SystemOptions, run_systems
    from encoders.runtime.pin_feedback import PinFeedback
    from encoders.runtime.vectors import exact_top_k

    ev = load_eval_set(dataset)
    fb = PinFeedback(k=3, weight=0.5)
    runs = run_systems(ev, ["searchsage", "prf"], run_dir, None, SystemOptions(depth=20, feedback=fb))
    tower, prf = runs["searchsage"], runs["prf"]
    expect, _ = exact_top_k(fb.apply(tower.queries, tower.index), tower.index, 20)
    np.testing.assert_array_equal(prf.ranking, expect)
    assert not np.array_equal(prf.ranking, tower.ranking)  # the feedback moved some queries
    assert "top 3 pins" in prf.notes[0]
    # weight 0: the same ranking as the tower alone
    off = run_systems(ev, ["prf"], run_dir, None, SystemOptions(depth=20, feedback=PinFeedback(weight=0.0)))
    np.testing.assert_array_equal(off["prf"].ranking, tower.ranking)


def test_zero_shot_reencodes_without_pin_tower_and_agrees(dataset: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(dataset, copy)
    (copy / "pin_tower.json").unlink()
    base = json.loads((dataset / "pin_tower.json").read_text())["base_model"]
    a = evaluate(dataset, systems=["zero_shot"], base_model=base, bootstrap_reps=10)
    b = evaluate(copy, systems=["zero_shot"], base_model=base, bootstrap_reps=10)
    assert "encoded" in b.systems[0].notes[0]
    assert a.systems[0].recall == pytest.approx(b.systems[0].recall)


def test_sampled_index_keeps_positives(dataset: Path, tiny_bert_dir: Path) -> None:
    full = evaluate(dataset, systems=["bm25"], bootstrap_reps=10)
    small = evaluate(dataset, systems=["bm25"], index_size=full.n_pairs + 20, seed=1, bootstrap_reps=10)
    assert small.index_sampled and small.index_size < full.index_size
    assert small.system("bm25").recall[10] >= full.system("bm25").recall[10] - 1e-9  # fewer distractors
    with pytest.raises(EvalInputError, match="index size 3 is smaller"):
        evaluate(dataset, systems=["bm25"], index_size=3)


def test_judged_metrics_on_a_constructed_ranking() -> None:
    pins = pa.table({"pin_id": ["a", "b", "x"], "text": ["a", "b", "x"]})
    ev = EvalSet(
        root=Path("."), pins=pins, queries=["q"], pair_query=np.zeros(0, np.int64), pair_pin=np.zeros(0, np.int64),
        task_pairs={}, judged={0: {"a": 3.0, "b": 1.0}}, index_rows=np.arange(3),
    )
    # ranking a, x, b with grades 3, unjudged, 1 on a 1..3 scale: ideal is a first → nDCG 1, P@8 1/8
    nd, p8 = _judged_metrics(ev, np.array([[0, 2, 1]]), 10, 8, 2.67, 1.0)
    assert nd == pytest.approx(1.0) and p8 == pytest.approx(1 / 8)
    nd, p8 = _judged_metrics(ev, np.array([[2, 1, 0]]), 10, 8, 2.67, 1.0)
    assert nd == pytest.approx(1 / np.log2(4)) and p8 == pytest.approx(1 / 8)


def test_errors_are_clear(dataset: Path, tmp_path: Path, tiny_bert_dir: Path) -> None:
    with pytest.raises(EvalInputError, match=r"run directory .* does not exist"):
        evaluate(dataset, tmp_path / "no-run", systems=["searchsage"])
    (tmp_path / "half-run").mkdir()
    with pytest.raises(EvalInputError, match=r"missing tower_config\.json"):
        evaluate(dataset, tmp_path / "half-run", systems=["bm25"])
    with pytest.raises(EvalInputError, match="needs a trained run directory"):
        evaluate(dataset, systems=["searchsage"])
    with pytest.raises(EvalInputError, match="unknown system"):
        evaluate(dataset, systems=["bm42"])
    with pytest.raises(EvalInputError, match="does not exist"):
        evaluate(tmp_path / "nowhere", systems=["bm25"])


def test_dataset_without_embeddings_needs_them_for_searchsage(
    tmp_path: Path, tiny_bert_dir: Path, run_dir: Path
) -> None:
    data = _build_dataset(tmp_path / "noemb", tiny_bert_dir, with_embeddings=False)
    with pytest.raises(EvalInputError, match=r"pins.parquet: no 'embedding' column"):
        evaluate(data, run_dir, systems=["searchsage"])


def test_cli_evaluate(dataset: Path, run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["evaluate", "--data", str(dataset), "--run", str(run_dir), "--systems", "bm25,searchsage,blend",
               "--index-size", "60", "--bootstrap-reps", "50", "--no-progress", "--threads", "1"])
    assert rc == 0
    report = EvalReport.read_json(run_dir / "eval_report.json")
    assert [s.name for s in report.systems] == ["bm25", "searchsage", "blend"] and report.index_size == 60
    assert "| blend |" in (run_dir / "eval_report.md").read_text()
    rc = main(["evaluate", "--data", str(dataset), "--run", str(run_dir), "--systems", "searchsage,prf",
               "--prf-k", "5", "--prf-weight", "0.3", "--bootstrap-reps", "50", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    prf = EvalReport.read_json(tmp_path / "eval_report.json").system("prf")
    assert "0.3 x mean of its top 5 pins" in prf.notes[0]
    capsys.readouterr()
    assert main(["evaluate", "--data", str(dataset), "--run", str(run_dir), "--prf-k", "0", "--out", str(tmp_path)]) == 2
    assert "--prf-k" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(dataset), "--systems", "bm25"]) == 2
    assert "pass --out DIR" in capsys.readouterr().err
    assert main(["evaluate", "--data", str(dataset), "--run", str(tmp_path / "missing"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--help"])
    assert exc.value.code == 0


def test_without_judgments_metrics_are_null_in_json(dataset: Path, tmp_path: Path) -> None:
    import math
    import shutil

    copy = tmp_path / "nojudg"
    shutil.copytree(dataset, copy)
    (copy / "judgments.parquet").unlink()
    report = evaluate(copy, systems=["bm25"], bootstrap_reps=10, out_dir=tmp_path / "out")
    assert report.n_judged_queries == 0 and math.isnan(report.systems[0].ndcg)
    raw = json.loads((tmp_path / "out" / "eval_report.json").read_text())  # strict JSON, nan → null
    assert raw["systems"][0]["ndcg"] is None and raw["systems"][0]["precision"] is None
    back = EvalReport.read_json(tmp_path / "out" / "eval_report.json")
    assert math.isnan(back.systems[0].ndcg) and back.systems[0].recall == report.systems[0].recall
