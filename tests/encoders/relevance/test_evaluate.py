"""``evaluate_systems`` / ``searchsage relevance evaluate`` on a tiny graded dataset with a tiny BERT."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.cli.main import main
from encoders.data.schema import JUDGMENTS, PINS, DatasetPaths, write_table
from encoders.data.split import is_eval_query
from encoders.relevance.evaluate import (
    PER_QUERY_PARQUET,
    REPORT_JSON,
    REPORT_MD,
    RelevanceReport,
    evaluate_systems,
    select_queries,
)
from encoders.relevance.features import tokenize
from encoders.relevance.pairs import load_judged_pairs
from encoders.relevance.scorers import (
    BM25PairScorer,
    RandomScorer,
    RelevanceEvalError,
    zero_shot_scorer,
)

WORDS = (
    "red blue green black white steel wood oak pine brass copper chair table lamp door window floor tile "
    "paint brush drill saw hammer nail screw bolt bracket shelf cabinet sink faucet toilet shower fan"
).split()


def _judgments(titles: list[str], rng: random.Random) -> list[tuple[str, str, float]]:
    """Per query (two words of a title): its title's pin → 3, pins sharing one query word → 2, others → 1."""
    out = []
    for i, t in enumerate(titles):
        w = t.split()
        for q in (f"{w[0]} {w[1]}", f"{w[1]} {w[2]}"):
            qw = set(q.split())
            share = [j for j, u in enumerate(titles) if j != i and len(qw & set(u.split())) == 1]
            none = [j for j, u in enumerate(titles) if not qw & set(u.split())]
            out.append((q, f"p{i}", 3.0))
            out += [(q, f"p{j}", 2.0) for j in rng.sample(share, min(2, len(share)))]
            out += [(q, f"p{j}", 1.0) for j in rng.sample(none, 3)]
    return list({(q, p): (q, p, g) for q, p, g in out}.values())


def _build_dataset(root: Path, tiny_bert_dir: Path, judgments=None, pin_tower: bool = True) -> Path:
    """80 pins with 3-word titles and their zero-shot embeddings; graded judgments (1/2/3)."""
    from encoders.eval.baselines import encode_with_tower, zero_shot_tower

    rng = random.Random(0)
    titles = list(dict.fromkeys(" ".join(rng.sample(WORDS, 3)) for _ in range(200)))[:80]
    emb = encode_with_tower(zero_shot_tower(tiny_bert_dir), titles, as_query=False, max_length=64)
    pins = {"pin_id": [f"p{i}" for i in range(len(titles))], "text": titles,
            "embedding": pa.array([row.tolist() for row in emb], pa.list_(pa.float32()))}
    paths = DatasetPaths(root)
    write_table(pa.table(pins), paths.pins, PINS)
    if pin_tower:
        (root / "pin_tower.json").write_text(
            json.dumps({"source": "computed", "base_model": str(tiny_bert_dir), "pooling": "mean", "dim": 32})
        )
    judg = judgments(titles) if judgments is not None else _judgments(titles, rng)
    write_table(pa.table({"query": [q for q, _, _ in judg], "pin_id": [p for _, p, _ in judg],
                          "grade": [float(g) for _, _, g in judg]}), paths.judgments, JUDGMENTS)
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    return _build_dataset(tmp_path_factory.mktemp("rel-data"), tiny_bert_dir)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    """An identity-readout mean-pooling run: the zero-shot model saved as a tower."""
    from encoders.model.tower import QueryTower, TowerConfig

    d = tmp_path_factory.mktemp("rel-run")
    QueryTower(TowerConfig(base_model=str(tiny_bert_dir), pooling="mean", readout_init="identity")).save(d)
    return d


def _oracle(dataset: Path) -> dict[tuple[str, str], float]:
    p = load_judged_pairs(dataset)
    return {(q, t): g for q, t, g in zip(p.queries, p.texts, p.grades, strict=True)}


class _FakeCrossEncoder:
    """Stands in for ``CrossEncoderScorer``: grades from the judgments, 0.4 off for every third pair."""

    grades: ClassVar[dict[tuple[str, str], float]] = {}

    def __init__(self, path, threads: int = 1):
        self.path, self.threads = path, threads

    def score(self, queries, texts) -> np.ndarray:
        out = np.asarray([self.grades[(q, t)] for q, t in zip(queries, texts, strict=True)], dtype=np.float32)
        out[::3] += 0.4  # still rounds to the judged level
        return out


def test_select_queries_keeps_split_queries_with_two_grades(dataset: Path) -> None:
    pairs = load_judged_pairs(dataset)
    by_q: dict[str, set[float]] = {}
    for q, g in zip(pairs.queries, pairs.grades, strict=True):
        by_q.setdefault(q, set()).add(float(g))
    expected = {q for q, gs in by_q.items() if is_eval_query(q) and len(gs) >= 2}
    assert len(expected) >= 8
    sel = select_queries(pairs, "eval")
    assert set(sel.queries) == expected and set(sel.split) == {"eval"}
    sub = select_queries(pairs, "eval", max_queries=3, seed=1)
    assert len(set(sub.queries)) == 3 and set(sub.queries) <= expected
    assert sub.queries == select_queries(pairs, "eval", max_queries=3, seed=1).queries  # seeded
    assert not set(select_queries(pairs, "validation").queries) & expected
    with pytest.raises(RelevanceEvalError, match="split"):
        select_queries(pairs, "train")


def test_bm25_pair_scorer_matches_bm25s_index_scores() -> None:
    import bm25s

    corpus = ["red steel chair for the kitchen", "blue oak table table", "red red lamp", "garden hose", "steel bolt"]
    index = bm25s.BM25(k1=1.5, b=0.75)
    index.index(bm25s.tokenize(corpus, lower=True, stopwords="en", show_progress=False), show_progress=False)
    scorer = BM25PairScorer(corpus)
    for q in ("red chair", "table table oak", "the steel", "nothing matches"):
        toks = [t for t in tokenize(q) if t in index.vocab_dict]
        expected = index.get_scores(toks) if toks else np.zeros(len(corpus))
        got = scorer([q] * len(corpus), [str(i) for i in range(len(corpus))], corpus)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    # IDF by hand: "steel" is in 2 of 5 documents
    assert scorer.idf("steel") == pytest.approx(np.log(1 + (5 - 2 + 0.5) / (2 + 0.5)))


def test_random_scorer_is_seeded_and_stable_under_subsetting() -> None:
    q, p = ["a", "a", "b"], ["1", "2", "1"]
    s = RandomScorer(3)(q, p, ["", "", ""])
    np.testing.assert_array_equal(s, RandomScorer(3)(q, p, ["", "", ""]))
    np.testing.assert_array_equal(s[1:], RandomScorer(3)(q[1:], p[1:], ["", ""]))
    assert not np.array_equal(s, RandomScorer(4)(q, p, ["", "", ""]))
    assert ((s >= 0) & (s < 1)).all()


def test_zero_shot_stored_and_encoded_pins_agree(dataset: Path, tiny_bert_dir: Path, tmp_path: Path) -> None:
    pairs = select_queries(load_judged_pairs(dataset))
    stored = zero_shot_scorer(dataset, tiny_bert_dir)
    assert "reused" in stored.description
    copy = tmp_path / "data"
    shutil.copytree(dataset, copy)
    (copy / "pin_tower.json").unlink()
    encoded = zero_shot_scorer(copy, tiny_bert_dir)
    assert "encoded" in encoded.description
    args = (pairs.queries, pairs.pin_ids, pairs.texts)
    np.testing.assert_allclose(stored(*args), encoded(*args), atol=1e-5)


def test_evaluate_systems_is_pluggable_and_informative_beats_random(dataset: Path) -> None:
    pairs = select_queries(load_judged_pairs(dataset))
    oracle = _oracle(dataset)

    def overlap(queries, pin_ids, texts):  # a plain function: shared words
        return np.asarray([len(set(q.split()) & set(t.split())) for q, t in zip(queries, texts, strict=True)], float)

    def exact(queries, pin_ids, texts):
        return np.asarray([oracle[(q, t)] for q, t in zip(queries, texts, strict=True)])

    report = evaluate_systems(
        pairs, {"random": RandomScorer(0), "overlap": overlap, "exact": exact},
        grade_systems=("exact",), reference="random", bootstrap_reps=300, seed=0,
    )
    rnd, ov, ex = report.system("random"), report.system("overlap"), report.system("exact")
    assert report.n_queries == len(set(pairs.queries)) and report.n_pairs == len(pairs)
    assert ex.kendall_tau == pytest.approx(1.0) and ex.ndcg_exp == pytest.approx(1.0)
    assert ex.grade_accuracy == pytest.approx(1.0) and ex.mae == pytest.approx(0.0)
    assert np.isnan(ov.grade_accuracy) and np.isnan(ov.mae) and not ov.predicts_grades
    assert ov.kendall_tau > 0.6 and abs(rnd.kendall_tau) < 0.35
    assert ov.ndcg_exp > rnd.ndcg_exp and ov.ndcg_linear > rnd.ndcg_linear
    assert ov.delta_tau is not None and ov.delta_tau.low > 0  # significantly better than random
    assert ov.delta_tau.diff == pytest.approx(ov.kendall_tau - rnd.kendall_tau)
    assert rnd.delta_tau is None and ov.pairs_per_s > 0
    # per-query values average to the summary
    pq_vals = report.per_query.values["overlap"]
    assert np.mean(pq_vals["ndcg_linear"]) == pytest.approx(ov.ndcg_linear)
    with pytest.raises(RelevanceEvalError, match="reference"):
        evaluate_systems(pairs, {"overlap": overlap}, reference="tower")
    with pytest.raises(RelevanceEvalError, match="returned 1 scores"):
        evaluate_systems(pairs, {"bad": lambda q, p, t: np.zeros(1)})
    with pytest.raises(RelevanceEvalError, match="non-finite"):
        evaluate_systems(pairs, {"bad": lambda q, p, t: np.full(len(q), np.nan)})


def test_cli_end_to_end(dataset: Path, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                        capsys: pytest.CaptureFixture[str]) -> None:
    import encoders.runtime.cross_encoder as ce

    monkeypatch.setattr(_FakeCrossEncoder, "grades", _oracle(dataset))
    monkeypatch.setattr(ce, "CrossEncoderScorer", _FakeCrossEncoder)
    out = tmp_path / "out"
    rc = main(["relevance", "evaluate", "--data", str(dataset), "--out", str(out), "--run", str(run_dir),
               "--teacher", str(tmp_path), "--bootstrap-reps", "200", "--threads", "1", "--no-progress"])
    assert rc == 0
    report = RelevanceReport.read_json(out / REPORT_JSON)
    names = [s.name for s in report.systems]
    assert names == ["random", "bm25", "zero_shot", "tower", "teacher"] and report.reference == "tower"
    n_eval = len(set(select_queries(load_judged_pairs(dataset)).queries))
    assert report.n_queries == n_eval and report.split == "eval" and report.scale["levels"] == [1.0, 2.0, 3.0]
    rnd, bm25, zs, tw, te = (report.system(n) for n in names)
    assert bm25.kendall_tau > rnd.kendall_tau + 0.3 and bm25.ndcg_exp > rnd.ndcg_exp
    # the identity-readout tower is the zero-shot model: same scores, zero difference
    assert tw.kendall_tau == pytest.approx(zs.kendall_tau) and tw.ndcg_exp == pytest.approx(zs.ndcg_exp)
    assert zs.delta_tau is not None and zs.delta_tau.diff == pytest.approx(0.0, abs=1e-9)
    # the fake teacher predicts grades: within 0.4 of the judged grade → accuracy 1, MAE 0.4 × share perturbed
    assert te.predicts_grades and te.grade_accuracy == pytest.approx(1.0) and 0.0 < te.mae < 0.4
    assert te.kendall_tau > 0.8 and not bm25.predicts_grades and report.to_dict()["systems"][1]["mae"] is None
    md = (out / REPORT_MD).read_text()
    for n in names:
        assert f"| {n} | " in md
    assert "Kendall tau" in md and "nDCG@10 exp" in md and "Δ tau vs tower" in md and "| reference |" in md
    table = pq.read_table(out / PER_QUERY_PARQUET)
    assert table.num_rows == n_eval * len(names)
    ndcg = [v for s, v in zip(table.column("system").to_pylist(), table.column("ndcg_exp").to_pylist(), strict=True)
            if s == "bm25"]
    assert np.mean(ndcg) == pytest.approx(bm25.ndcg_exp)
    assert "wrote" in capsys.readouterr().out


def test_cli_max_queries_and_systems(dataset: Path, tmp_path: Path) -> None:
    rc = main(["relevance", "evaluate", "--data", str(dataset), "--out", str(tmp_path), "--systems", "random,bm25",
               "--max-queries", "4", "--bootstrap-reps", "50", "--ties", "worst", "--no-progress"])
    assert rc == 0
    report = RelevanceReport.read_json(tmp_path / REPORT_JSON)
    assert report.n_queries == 4 and report.max_queries == 4 and report.reference == "bm25"
    assert report.ties == "worst" and "worst order" in (tmp_path / REPORT_MD).read_text()
    assert [s.name for s in report.systems] == ["random", "bm25"]


def _errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    return capsys.readouterr().err


def test_cli_errors(dataset: Path, tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["relevance", "evaluate", "--out", str(tmp_path / "o"), "--no-progress"]
    no_judgments = tmp_path / "nj"
    shutil.copytree(dataset, no_judgments)
    (no_judgments / "judgments.parquet").unlink()
    assert "judgments.parquet not found" in _errors([*base, "--data", str(no_judgments)], capsys)
    assert "does not exist" in _errors([*base, "--data", str(tmp_path / "missing")], capsys)
    assert "needs --run" in _errors([*base, "--data", str(dataset), "--systems", "bm25,tower"], capsys)
    assert "unknown system" in _errors([*base, "--data", str(dataset), "--systems", "bm25,magic"], capsys)
    assert "--reference" in _errors([*base, "--data", str(dataset), "--systems", "bm25", "--reference", "tower"],
                                    capsys)
    assert "needs --teacher" in _errors([*base, "--data", str(dataset), "--systems", "teacher"], capsys)
    assert "outside the declared scale" in _errors([*base, "--data", str(dataset), "--grade-scale", "1:2"], capsys)

    def single_grade_eval(titles: list[str]) -> list[tuple[str, str, float]]:
        # eval queries hold one grade each; train queries two (the dataset still has a scale)
        out = []
        for i, t in enumerate(titles):
            q = " ".join(t.split()[:2])
            out.append((q, f"p{i}", 3.0))
            if not is_eval_query(q):
                out.append((q, f"p{(i + 1) % len(titles)}", 1.0))
        return list({(q, p): (q, p, g) for q, p, g in out}.values())

    flat = _build_dataset(tmp_path / "flat", tiny_bert_dir, judgments=single_grade_eval)
    err = _errors([*base, "--data", str(flat), "--systems", "bm25"], capsys)
    assert "no eval query has two or more distinct grades" in err and "Traceback" not in err
    assert not (tmp_path / "o" / REPORT_JSON).exists()
