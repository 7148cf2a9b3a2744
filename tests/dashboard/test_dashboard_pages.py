"""Every page under Streamlit's AppTest, on real result files from the A/B pipeline."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from dash_fixtures import HEALTHY, SRM, DashEnv, run_cli
from streamlit.testing.v1 import AppTest

from dashboard.loaders import load_pins
from encoders.localredis.server import LocalRedis
from encoders.redis_records.embeddings import EmbeddingStore
from encoders.runtime import BundleEncoder
from encoders.serving.store import redis_client


def page(name: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> AppTest:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    at = AppTest.from_string(f"from dashboard.views import {name}\n{name}.render()\n", default_timeout=60)
    return at.run()


def texts(at: AppTest, kind: str) -> list[str]:
    return [e.value for e in getattr(at, kind)]


def test_experiments_page_lists_status(dash_env: DashEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("experiments", monkeypatch, dash_env.env())
    assert not at.exception
    table = at.dataframe[0].value
    assert sorted(table.experiment) == sorted([HEALTHY, SRM])
    by = table.set_index("experiment")
    assert by.loc[SRM, "SRM"] == "FAIL" and by.loc[HEALTHY, "SRM"] == "pass"
    summary = json.loads((dash_env.results / HEALTHY / "summary.json").read_text())
    assert by.loc[HEALTHY, "significant decision metrics"] == (
        f"{summary['n_significant_decision_metrics']} / {len(summary['decision_metrics'])}")
    assert {m.label: m.value for m in at.metric}["SRM failures"] == "1"


def test_detail_blocks_the_verdict_on_srm(dash_env: DashEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("experiment_detail", monkeypatch, dash_env.env())
    at.selectbox[0].select(SRM).run()
    assert not at.exception
    assert any("verdict blocked" in e for e in texts(at, "error"))
    assert not any(i.startswith("Verdict") for i in texts(at, "info") + texts(at, "warning"))
    at.selectbox[0].select(HEALTHY).run()
    assert not at.exception and not texts(at, "error")
    assert any("SRM check passed" in s for s in texts(at, "success"))
    verdict = [v for v in texts(at, "info") + texts(at, "warning") if v.startswith("Verdict")]
    summary = json.loads((dash_env.results / HEALTHY / "summary.json").read_text())
    assert verdict and f"**{summary['n_significant_decision_metrics']} of 4**" in verdict[0]
    metric_rows = at.dataframe[0].value
    assert "long_click_rate" in set(metric_rows.metric) and "clicks_per_user" not in set(metric_rows.metric)
    assert len(at.tabs) == 5
    guard = next(d.value for d in at.dataframe if "guardrail" in d.value.columns)
    assert set(guard.guardrail) == {"searches_per_user", "clicks_per_user"}
    mde = {m.label: m.value for m in at.metric}
    assert mde["MDE at 80% power"].endswith("%") and float(mde["MDE at 80% power"][:-1]) > 0


def test_detail_power_calculator_reacts_to_inputs(dash_env: DashEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("experiment_detail", monkeypatch, dash_env.env())
    at.selectbox[0].select(HEALTHY).run()
    before = float({m.label: m.value for m in at.metric}["MDE at 80% power"][:-1])
    at.number_input(key="pw_users").set_value(40_000).run()
    after = float({m.label: m.value for m in at.metric}["MDE at 80% power"][:-1])
    assert not at.exception and after < before / 3  # MDE ∝ 1/sqrt(n)


def test_relevance_page_shows_arms_and_swings(dash_env: DashEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("relevance", monkeypatch, dash_env.env())
    at.selectbox[0].select(HEALTHY).run()
    assert not at.exception and not texts(at, "error")
    rel = json.loads((dash_env.results / HEALTHY / "relevance.json").read_text())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["nDCG@10 · control"] == f"{rel['mean']['control']['ndcg_at_k']:.3f}"
    assert metrics["P@8 · treatment"] == f"{rel['mean']['treatment']['precision_at_k']:.3f}"
    subheaders = [s.value for s in at.subheader]
    assert "Queries won most" in subheaders and "Queries lost most" in subheaders
    side = at.dataframe[-1].value
    assert list(side.columns) == ["rank", "control", "treatment"]
    assert side.treatment.str.contains(" — ").any()  # pin text from the pins table


def test_relevance_page_shows_the_four_estimates(dash_env: DashEnv, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    logs, results = tmp_path / "logs", tmp_path / "results"
    run_cli("abtest", "simulate", "--data", str(dash_env.data), "--out", str(logs), "--users", "400", "--days", "2",
            "--pre-days", "1", "--judged-fraction", "0.3", "--unjudged-relevance", "sampled", "--experiment", "ppi_exp")
    run_cli("abtest", "analyze", str(logs), "--control", "control", "--out", str(results), "--no-segments")
    at = page("relevance", monkeypatch, dash_env.env(SEARCHSAGE_DASH_RESULTS=str(results)))
    assert not at.exception and not texts(at, "error")
    rel = json.loads((results / "ppi_exp" / "relevance_ppi.json").read_text())
    estimates = at.dataframe[0].value
    ppi = estimates[(estimates.estimator == "PPI (decision)") & (estimates.metric == "ndcg@10")]
    assert len(ppi) == 1 and set(estimates.estimator) == {"PPI (decision)", "judged only", "model only",
                                                          "unjudged = 0 (old)"}
    want = next(c for c in rel["comparisons"] if c["estimator"] == "ppi" and c["metric"] == "ndcg@10")
    assert ppi["Δ [95% CI]"].iloc[0].startswith(f"{want['abs_delta']:+.4f} [{want['abs_ci'][0]:+.4f}")
    metrics = {m.label: m.value for m in at.metric}
    frac = rel["judged_fraction"]["control"]  # round(0.3 · Q) of the small preset's Q judged queries
    assert 0.25 < frac < 0.35 and rel["mode"] == "ppi"
    assert metrics["Judged queries · control"] == f"{100 * frac:.1f}%" and "Grade MAE" in metrics
    assert any(list(d.value.columns)[:2] == ["model 1", "model 2"] for d in at.dataframe)  # confusion table
    # an older results directory without the PPI files still renders the judgments-only page
    old = tmp_path / "old"
    shutil.copytree(results / "ppi_exp", old / "ppi_exp")
    for name in ("relevance_ppi.json", "relevance_ppi_per_query.parquet"):
        (old / "ppi_exp" / name).unlink()
    at = page("relevance", monkeypatch, dash_env.env(SEARCHSAGE_DASH_RESULTS=str(old)))
    assert not at.exception and not texts(at, "error") and "Judged queries · control" not in {
        m.label for m in at.metric}
    assert "nDCG@10 · control" in {m.label for m in at.metric}


def test_explorer_embeds_live_and_says_store_not_configured(dash_env: DashEnv,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("explorer", monkeypatch, dash_env.env())
    assert not at.exception and any("Type a query" in i for i in texts(at, "info"))
    at.text_input(key="query").input("Angle  Bracket").run()
    assert not at.exception
    assert any("Online store not configured" in i for i in texts(at, "info"))
    hits = at.dataframe[0].value
    enc = BundleEncoder(dash_env.bundle, threads=1)
    pins = load_pins(dash_env.pins)
    exact = pins.embedding @ enc.encode(["angle bracket"])[0]
    top = np.argsort(-exact)[:10]
    assert len(hits) == 10 and hits.pin_id.iloc[0] == pins.ids[top[0]]
    assert len(set(hits.pin_id) & {pins.ids[i] for i in top}) >= 8  # HNSW ≈ exact top-10
    np.testing.assert_allclose(hits.score.iloc[0], exact[top[0]], rtol=1e-4)


def test_explorer_finds_the_query_in_redis(dash_env: DashEnv, redis_server: LocalRedis, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(
        f"project: dashtest\nonline_store:\n  type: redis\n  connection_string: {redis_server.connection_string}\n")
    enc = BundleEncoder(dash_env.bundle, threads=1)
    store = EmbeddingStore(client=redis_client(redis_server.connection_string), project="dashtest",
                           feature_view="query_embedding", join_key="query", dim=enc.dim)
    store.write(["garden hose"], enc.encode(["garden hose"]), model_version=enc.model_version)
    at = page("explorer", monkeypatch, dash_env.env(SEARCHSAGE_DASH_REPO=str(repo)))
    at.text_input(key="query").input("Garden Hose").run()
    assert not at.exception
    found = texts(at, "success")
    assert found and "found `garden hose`" in found[0] and "the bundle's version" in found[0]
    assert "cosine to the live embedding 1.0000" in found[0]
    at.text_input(key="query").input("never stored lamp").run()
    assert any("not in the online store" in i for i in texts(at, "info"))


def test_explorer_reports_unreachable_redis(dash_env: DashEnv, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from encoders.localredis.server import free_port

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "feature_store.yaml").write_text(
        f"project: x\nonline_store:\n  type: redis\n  connection_string: 127.0.0.1:{free_port()}\n")
    at = page("explorer", monkeypatch, dash_env.env(SEARCHSAGE_DASH_REPO=str(repo)))
    at.text_input(key="query").input("lamp").run()
    assert not at.exception and any("online store unavailable" in w for w in texts(at, "warning"))


def test_model_card_shows_the_training_report(dash_env: DashEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("model_card", monkeypatch, dash_env.env())
    assert not at.exception and not texts(at, "error") and not texts(at, "warning")
    report = json.loads((dash_env.bundle / "eval_report.json").read_text())
    table = at.dataframe[1].value.set_index("system")
    bm25 = next(s for s in report["systems"] if s["name"] == "bm25")
    assert table.loc["bm25 (best baseline)", "Recall@10"] == f"{bm25['recall']['10']:.3f}"
    tower = next(s for s in report["systems"] if s["name"] == "searchsage")
    assert table.loc["searchsage", "nDCG@10"] == f"{tower['ndcg']:.3f}"
    manifest = at.dataframe[0].value.set_index("field")
    assert manifest.loc["model_version", "value"] == BundleEncoder(dash_env.bundle).model_version


def test_missing_and_malformed_inputs_are_messages(dash_env: DashEnv, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    env = dash_env.env(SEARCHSAGE_DASH_RESULTS=str(tmp_path / "absent"), SEARCHSAGE_DASH_BUNDLE="",
                       SEARCHSAGE_DASH_PINS="")
    for name in ("experiments", "experiment_detail", "relevance"):
        at = page(name, monkeypatch, env)
        assert not at.exception and any("does not exist; pass --results DIR" in e for e in texts(at, "error"))
    for name, needle in (("explorer", "needs an exported bundle"), ("model_card", "No bundle configured")):
        at = page(name, monkeypatch, env)
        assert not at.exception and any(needle in w for w in texts(at, "warning"))
    root = tmp_path / "results"
    shutil.copytree(dash_env.results / HEALTHY, root / HEALTHY)
    (root / HEALTHY / "results.parquet").write_bytes(b"not parquet")
    (root / "junk").mkdir()
    (root / "junk" / "summary.json").write_text("{")
    bundle = tmp_path / "bundle"
    shutil.copytree(dash_env.bundle, bundle)
    (bundle / "eval_report.json").write_text('{"recall@10": 0.5}')
    env = dash_env.env(SEARCHSAGE_DASH_RESULTS=str(root), SEARCHSAGE_DASH_BUNDLE=str(bundle),
                       SEARCHSAGE_DASH_PINS=str(tmp_path / "nopins.parquet"))
    at = page("experiments", monkeypatch, env)
    assert not at.exception and any("junk" in w and "not valid JSON" in w for w in texts(at, "warning"))
    at = page("experiment_detail", monkeypatch, env)
    assert not at.exception and any("not a readable parquet file" in e for e in texts(at, "error"))
    at = page("model_card", monkeypatch, env)
    assert not at.exception and any("key 'systems' missing" in w for w in texts(at, "warning"))
    at = page("explorer", monkeypatch, env)
    assert not at.exception and any("nopins.parquet not found" in e for e in texts(at, "error"))


def test_detail_shows_bayesian_engine_and_adjusted_cis(dash_env: DashEnv, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    run_cli("abtest", "analyze", str(dash_env.logs[HEALTHY]), "--control", "control", "--out", str(results),
            "--engine", "both", "--cap-quantile", "0.999")
    at = page("experiment_detail", monkeypatch, dash_env.env(SEARCHSAGE_DASH_RESULTS=str(results)))
    assert not at.exception
    table = at.dataframe[0].value
    assert {"P(beat control)", "Bayes Δ [95% CrI]", "Δ rel [adj. CI]"} <= set(table.columns)
    rows = json.loads((results / HEALTHY / "results.json").read_text())
    lcr = next(r for r in rows if r["metric"] == "long_click_rate" and r["segment"] == "all")
    shown = table.set_index("metric").loc["long_click_rate", "P(beat control)"]
    assert shown == f"{100 * lcr['chance_to_win']:.1f}%"
    tiles = {m.label: m.value for m in at.metric}
    assert tiles["P(long_click_rate beats control)"] == shown
    assert any("Bayesian engine" in m.value for m in at.markdown)
    # the default analysis has no Bayesian columns and the page does not show them
    plain = page("experiment_detail", monkeypatch, dash_env.env())
    assert "P(beat control)" not in plain.dataframe[0].value.columns
    assert "Δ rel [adj. CI]" in plain.dataframe[0].value.columns


def test_homefeed_page_shows_recall_and_the_paired_cis(dash_env: DashEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("homefeed", monkeypatch, dash_env.env())
    assert not at.exception and not texts(at, "error") and not texts(at, "warning")
    report = json.loads((dash_env.homefeed / "eval_report.json").read_text())
    recall = at.dataframe[0].value.set_index("system")
    assert list(recall.index) == list(report["systems"]) and {"tower", "no_id_embeddings", "no_feature_crossing",
                                                              "mean_recent", "popularity"} <= set(recall.index)
    assert recall.loc["tower", "Recall@10"] == round(report["systems"]["tower"]["all"]["overall"]["10"], 4)
    paired = at.dataframe[1].value.set_index("tower minus")
    want = next(c for c in report["comparisons"] if c["b"] == "no_id_embeddings" and c["corpus"] == "all")
    ci = want["ci"]["10"]
    assert paired.loc["no_id_embeddings", "Δ Recall@10 [95% CI]"] == (
        f"{ci['diff']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]")
    assert set(paired["corpus"]) == {"all"} and "mean_recent" in paired.index
    # another corpus and an action slice: the numbers follow the choice
    at.selectbox(key="hf_corpus").select("decayed").run()
    at.selectbox(key="hf_slice").select("save").run()
    assert not at.exception
    rec = at.dataframe[0].value.set_index("system")
    assert rec.loc["mean_recent", "Recall@50"] == round(report["systems"]["mean_recent"]["decayed"]["save"]["50"], 4)
    assert set(at.dataframe[1].value["corpus"]) == {"decayed"}


def test_homefeed_page_without_or_with_a_bad_report(dash_env: DashEnv, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    at = page("homefeed", monkeypatch, dash_env.env(SEARCHSAGE_DASH_HOMEFEED=""))
    assert not at.exception and any("No homefeed evaluation configured" in w for w in texts(at, "warning"))
    bad = tmp_path / "eval"
    bad.mkdir()
    (bad / "eval_report.json").write_text('{"model_version": "x"}')
    at = page("homefeed", monkeypatch, dash_env.env(SEARCHSAGE_DASH_HOMEFEED=str(bad)))
    assert not at.exception and any("key 'ks' missing" in e and "searchsage homefeed evaluate" in e
                                    for e in texts(at, "error"))
    at = page("homefeed", monkeypatch, dash_env.env(SEARCHSAGE_DASH_HOMEFEED=str(tmp_path / "absent")))
    assert not at.exception and any("not found" in e for e in texts(at, "error"))
