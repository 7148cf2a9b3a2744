"""The synthetic generator: deterministic, Zipf-shaped, both tasks, typos, learnable structure."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from encoders.data.dataset_check import summarize_dataset
from encoders.data.synthetic import PRESETS, QUERIES_FILE, add_typo, generate_synthetic, write_synthetic

FILES = ("pins.parquet", "engagements.parquet", "judgments.parquet", QUERIES_FILE, "dataset.json")


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    config = replace(PRESETS["small"], judgments="all")
    return write_synthetic(tmp_path_factory.mktemp("syn") / "a", config).root


def test_same_seed_gives_byte_identical_files(small: Path, tmp_path: Path) -> None:
    again = write_synthetic(tmp_path / "b", replace(PRESETS["small"], judgments="all")).root
    for name in FILES:
        assert (small / name).read_bytes() == (again / name).read_bytes(), name
    other = generate_synthetic(tmp_path / "c", n_pins=500, n_queries=150, seed=1, judgments="all")
    assert (other.pins).read_bytes() != (small / "pins.parquet").read_bytes()


def test_tables_are_valid_and_linked(small: Path) -> None:
    s = summarize_dataset(small)  # raises if any engaged/judged pin is missing
    assert s.pins == 500 and s.distinct_queries == 150 and s.engagements == 1500
    assert set(s.engagements_by_task) == {"organic", "shopping"}
    eng = pq.read_table(small / "engagements.parquet").to_pandas()
    assert (eng.loc[eng.task == "organic", "action"] == "save").all()
    assert (eng.loc[eng.task == "shopping", "action"] == "long_click").all()
    assert eng.timestamp.is_monotonic_increasing


def test_titles_look_like_products(small: Path) -> None:
    titles = pq.read_table(small / "pins.parquet").column("text").to_pylist()
    assert len(set(titles)) > 0.95 * len(titles)
    assert all(" in " in t and len(t) < 100 for t in titles)


def test_zipf_head_heavier_than_tail(small: Path) -> None:
    meta = pq.read_table(small / QUERIES_FILE).to_pandas().sort_values("rank")
    counts = meta.n_engagements.to_numpy()
    tenth = len(counts) // 10
    assert counts[:tenth].sum() > 5 * counts[-tenth:].sum()
    assert counts.min() >= 1
    assert np.corrcoef(meta["rank"], counts)[0, 1] < 0


def test_query_forms_typos_and_synonyms(small: Path) -> None:
    meta = pq.read_table(small / QUERIES_FILE).to_pandas()
    assert {"type", "attr", "brand", "style", "occasion"} <= set(meta.form)
    typos = meta[meta.typo]
    assert len(typos) > 0 and (typos["query"] != typos.clean_query).all()
    titles = " ".join(pq.read_table(small / "pins.parquet").column("text").to_pylist()).lower()
    # some queries share no word with any title → lexical matching alone cannot serve them
    lexical_miss = [q for q in meta.clean_query if not any(w in titles for w in q.split())]
    assert lexical_miss


def test_judgment_grades_follow_intent(small: Path) -> None:
    judg = pq.read_table(small / "judgments.parquet").to_pandas()
    eng = pq.read_table(small / "engagements.parquet").to_pandas()
    assert set(judg.grade) <= {1.0, 2.0, 3.0} and 3.0 in set(judg.grade)
    graded = judg.set_index(["query", "pin_id"]).grade
    # every engaged pin is an exact-intent (grade 3) pin of its query
    assert (graded.loc[list(zip(eng["query"], eng.pin_id, strict=True))] == 3.0).all()


def test_typo_changes_one_word() -> None:
    rng = np.random.default_rng(0)
    out = {add_typo("cordless drill", rng) for _ in range(50)}
    assert "cordless drill" not in out and len(out) > 10
    for o in out:  # exactly one of the two words changed, by at most one edit
        a, b = o.split()
        assert (a == "cordless") != (b == "drill")
        assert abs(len(o) - len("cordless drill")) <= 1
    assert add_typo("a b", rng) == "a b"


def test_too_few_pins_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_engagements=10 must be >= n_queries=20"):
        generate_synthetic(tmp_path, n_pins=300, n_queries=20, n_engagements=10)
