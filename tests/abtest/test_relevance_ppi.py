"""Relevance with model labels: per-query metrics, the four estimates, agreement, simulator and CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from abtest.relevance import compare_relevance, graded_query_metrics, paired_test, query_relevance
from abtest.relevance_ppi import grade_agreement, ppi_relevance
from abtest.relevance_report import load_judgments, load_model_labels
from abtest.stats.ppi import ppi_paired_delta
from encoders.cli.main import main
from encoders.data.schema import DataValidationError


def _world(seed: int = 0, n_q: int = 60, judged_share: float = 0.3):
    """Two arms over ``n_q`` queries, 12 pins each; treatment shows 3 novel pins; grades 1–3."""
    rng = np.random.default_rng(seed)
    served, truth = {"control": {}, "treatment": {}}, {}
    for i in range(n_q):
        q = f"q{i:03d}"
        pins = [f"{q}-p{j}" for j in range(14)]
        g = rng.integers(1, 4, size=14).astype(float)
        truth[q] = dict(zip(pins, g.tolist(), strict=True))
        served["control"][q] = pins[:10]
        served["treatment"][q] = [pins[j] for j in np.argsort(-(g + rng.normal(0, 0.8, 14)))[:10]]
    model = {q: {p: float(np.clip(g + rng.normal(0, 0.3), 1, 3)) for p, g in qt.items()} for q, qt in truth.items()}
    judged_q = sorted(truth)[: int(judged_share * n_q)]
    judgments = {q: {p: truth[q][p] for p in set(served["control"][q]) | set(served["treatment"][q])}
                 for q in judged_q}
    return served, truth, model, judgments


def test_graded_metrics_agree_with_query_relevance_and_flag_complete_queries() -> None:
    served, _truth, _model, judgments = _world()
    qs = list(served["control"])
    m = graded_query_metrics(served["treatment"], judgments, qs, k=10, p_k=8, relevant_grade=2.0, min_grade=1.0)
    legacy = query_relevance(served["treatment"], judgments, k=10, p_k=8, relevant_grade=2.0, min_grade=1.0)
    for q, nd in legacy.as_dict("ndcg").items():
        i = qs.index(q)
        assert m.ndcg[i] == pytest.approx(0.0 if np.isnan(nd) else nd)
        assert m.precision[i] == pytest.approx(legacy.as_dict("precision")[q])
    assert m.complete.sum() == len(judgments) and np.isnan(m.ndcg[~m.complete]).all()
    # a query whose judged items are all at the lowest grade: nDCG undefined → 0 here, nan in the legacy table
    flat = {"a": {"x": 1.0, "y": 1.0}}
    assert graded_query_metrics({"a": ["x", "y"]}, flat, ["a"], min_grade=1.0).ndcg[0] == 0.0
    assert np.isnan(query_relevance({"a": ["x", "y"]}, flat, min_grade=1.0).ndcg[0])


def test_four_estimates_match_their_reference_computations() -> None:
    served, _truth, model, judgments = _world()
    rep = ppi_relevance(served, model, judgments, "control")
    s = rep.summary
    assert s["mode"] == "ppi" and s["judged_queries"] == {"control": 18, "treatment": 18}
    assert s["judged_fraction"]["treatment"] == pytest.approx(0.3)
    by = {(c["estimator"], c["metric"]): c for c in s["comparisons"]}
    assert set(by) == {(e, m) for e in ("ppi", "judged_only", "model_only", "unjudged_zero") for m in ("ndcg@10", "p@8")}
    assert [c["decision"] for c in s["comparisons"] if c["estimator"] == "ppi"] == [True, True]
    pqt = rep.per_query.pivot(index="query", columns="arm")
    ref = ppi_paired_delta(pqt["ndcg_at_k_model"]["control"].to_numpy(), pqt["ndcg_at_k_model"]["treatment"].to_numpy(),
                           pqt["ndcg_at_k_human"]["control"].to_numpy(), pqt["ndcg_at_k_human"]["treatment"].to_numpy())
    assert by[("ppi", "ndcg@10")]["abs_delta"] == pytest.approx(ref.abs_delta, abs=1e-12)
    assert by[("ppi", "ndcg@10")]["abs_ci"] == pytest.approx(list(ref.abs_ci), abs=1e-12)
    j = rep.per_query[rep.per_query.judged].pivot(index="query", columns="arm")["precision_at_k_human"]
    ref_j = paired_test(j["control"].to_numpy(), j["treatment"].to_numpy())
    assert by[("judged_only", "p@8")]["abs_delta"] == pytest.approx(ref_j.abs_delta, abs=1e-12)
    ref_m = paired_test(pqt["ndcg_at_k_model"]["control"].to_numpy(), pqt["ndcg_at_k_model"]["treatment"].to_numpy())
    assert by[("model_only", "ndcg@10")]["abs_ci"] == pytest.approx(list(ref_m.abs_ci), abs=1e-12)
    legacy = compare_relevance(query_relevance(served["control"], judgments, relevant_grade=2.0, min_grade=1.0),
                               query_relevance(served["treatment"], judgments, relevant_grade=2.0, min_grade=1.0))
    assert by[("unjudged_zero", "ndcg@10")]["abs_delta"] == pytest.approx(legacy[0].abs_delta, abs=1e-12)
    arms = pd.DataFrame(s["arms"]).set_index(["estimator", "metric", "arm"])
    assert arms.loc[("model_only", "ndcg@10", "control"), "estimate"] == pytest.approx(
        pqt["ndcg_at_k_model"]["control"].mean())
    ppi_row = arms.loc[("ppi", "ndcg@10", "treatment")]
    assert ppi_row.n_labelled == 18 and ppi_row.n_unlabelled == 42 and 0 <= ppi_row.lam <= 1
    assert s["agreement"]["per_query"]["ndcg@10"]["pearson"] > 0.5
    assert s["agreement"]["grades"]["n"] == sum(len(v) for v in judgments.values())


def test_no_judged_query_gives_a_model_only_result() -> None:
    served, _truth, model, judgments = _world()
    for judg in (None, {q: dict(list(v.items())[:3]) for q, v in judgments.items()}):  # none / none complete
        rep = ppi_relevance(served, model, judg, "control")
        est = {c["estimator"] for c in rep.summary["comparisons"]}
        assert rep.summary["mode"] == "model-only" and "ppi" not in est and "model_only" in est
        assert ("unjudged_zero" in est) == (judg is not None)
        assert any("model-only estimates, no PPI" in n for n in rep.summary["notes"])
    assert rep.summary["partially_judged_queries"]["control"] == len(judgments)


def test_grade_agreement_by_hand() -> None:
    judg = {"q": {"a": 1.0, "b": 2.0, "c": 3.0, "d": 3.0}}
    model = {"q": {"a": 1.2, "b": 2.6, "c": 2.9, "d": 2.4, "e": 1.0}}
    out = grade_agreement(judg, model, [1.0, 2.0, 3.0], 1.0, 3.0, bins=2)
    assert out["n"] == 4 and out["mae"] == pytest.approx((0.2 + 0.6 + 0.1 + 0.6) / 4)
    assert out["exact_share"] == pytest.approx(0.5)  # rounded 1, 3, 3, 2
    assert out["confusion"]["counts"] == [[1, 0, 0], [0, 0, 1], [0, 1, 1]]
    assert [(b["n"], b["human_mean"]) for b in out["calibration"]] == [(1, 1.0), (3, pytest.approx(8 / 3))]


def test_model_labels_off_the_scale_name_the_row(tmp_path: Path) -> None:
    path = tmp_path / "model_labels.parquet"
    pq.write_table(pa.table({"query": ["a", "a"], "pin_id": ["x", "y"], "grade": [2.0, 7.5]}), path)
    with pytest.raises(DataValidationError, match=r"row 1.*outside the judgments' grade scale \[1, 3\]"):
        load_model_labels(path, 1.0, 3.0)
    assert load_model_labels(path) == {"a": {"x": 2.0, "y": 7.5}}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from encoders.data.synthetic import generate_synthetic

    paths = generate_synthetic(tmp_path_factory.mktemp("data"), n_pins=600, n_queries=120, seed=0, judgments="all")
    pins = pq.read_table(paths.pins)
    emb = np.random.default_rng(0).normal(size=(pins.num_rows, 16)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    pq.write_table(pins.append_column("embedding", pa.array(list(emb), pa.list_(pa.float32()))), paths.pins)
    return paths.root


def test_simulate_judged_sample_and_model_labels_then_analyze(dataset: Path, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    assert main(["abtest", "simulate", "--data", str(dataset), "--out", str(logs), "--users", "600", "--days", "2",
                 "--pre-days", "1", "--treatment-strategy", "blend", "--judged-fraction", "0.25",
                 "--unjudged-relevance", "sampled", "--seed", "2"]) == 0
    served = pd.read_parquet(logs / "served.parquet")
    shown = {(q, p) for q, pins in zip(served["query"], served.pin_ids, strict=True) for p in pins}
    judg, model = load_judgments(logs / "judgments.parquet"), load_judgments(logs / "model_labels.parquet")
    truth = load_judgments(logs / "true_grades.parquet")
    assert len(judg) == 30 and {(q, p) for q in model for p in model[q]} == shown
    for q, qj in judg.items():  # every shown result of both arms, with the true grade
        assert set(qj) == {p for (qq, p) in shown if qq == q} and qj == truth[q]
    grades = np.array([g for qm in model.values() for g in qm.values()])
    assert grades.min() >= 1.0 and grades.max() <= 3.0 and len(np.unique(grades)) > 100
    info = json.loads((logs / "simulation.json").read_text())["labels"]
    assert info["judged_fraction"] == 0.25 and info["unjudged_relevance"] == "sampled"
    # some pins the dataset never judged are relevant in truth (sampled), so unjudged = 0 is not the truth
    data_j = load_judgments(dataset / "judgments.parquet")
    assert any(g > 1.0 and p not in data_j.get(q, {}) for q, qt in truth.items() for p, g in qt.items())

    out = tmp_path / "res"
    assert main(["abtest", "analyze", str(logs), "--control", "control", "--out", str(out), "--no-segments"]) == 0
    d = out / "searchsage"
    summary = json.loads((d / "summary.json").read_text())
    assert {"relevance_ppi.json", "relevance_ppi_per_query.parquet", "relevance.json"} <= set(summary["files"])
    rj = json.loads((d / "relevance_ppi.json").read_text())
    assert rj["mode"] == "ppi" and rj["judged_fraction"]["control"] == pytest.approx(0.25)
    per_q = pd.read_parquet(d / "relevance_ppi_per_query.parquet")
    assert per_q.judged.sum() == 60 and per_q.ndcg_at_k_model.between(0, 1).all()
    # the true delta (true grades of every served result) against the PPI estimate and interval
    rel = {arm: graded_query_metrics(dict(zip(g["query"], g.pin_ids, strict=True)), truth, sorted(truth),
                                     relevant_grade=2.0, min_grade=1.0)
           for arm, g in served.groupby("arm")}
    true_delta = float(np.mean(rel["treatment"].ndcg - rel["control"].ndcg))
    ppi = next(c for c in rj["comparisons"] if c["estimator"] == "ppi" and c["metric"] == "ndcg@10")
    assert ppi["abs_ci"][0] <= true_delta <= ppi["abs_ci"][1]


def test_analyze_model_labels_flag_and_bad_file(dataset: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    logs = tmp_path / "logs"
    assert main(["abtest", "simulate", "--data", str(dataset), "--out", str(logs), "--users", "300", "--days", "2",
                 "--pre-days", "1", "--treatment-strategy", "blend"]) == 0
    assert (logs / "judgments.parquet").read_bytes() == (dataset / "judgments.parquet").read_bytes()
    bad = tmp_path / "bad_labels.parquet"
    pq.write_table(pa.table({"query": ["x"], "pin_id": ["y"], "grade": [9.0]}), bad)
    capsys.readouterr()
    assert main(["abtest", "analyze", str(logs), "--control", "control", "--out", str(tmp_path / "r"),
                 "--no-segments", "--model-labels", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad_labels.parquet" in err and "column 'grade'" in err and "row 0" in err
    (logs / "judgments.parquet").unlink()  # model labels only: model-only estimates, no legacy relevance
    assert main(["abtest", "analyze", str(logs), "--control", "control", "--out", str(tmp_path / "r"),
                 "--no-segments"]) == 0
    d = tmp_path / "r" / "searchsage"
    assert json.loads((d / "relevance_ppi.json").read_text())["mode"] == "model-only"
    assert not (d / "relevance.json").exists()
