"""Student features without Redis: BM25 and text features, the q⊙p projection, the matrix layout,
deduplicated source reads, and the dataset source's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from relevance_helpers import HashSource, make_dataset

from encoders.relevance.engagement_stats import STAT_COLUMNS
from encoders.relevance.feature_sources import DatasetFeatureSource
from encoders.relevance.features import (
    STAT_FEATURES,
    TEXT_FEATURES,
    FeatureSourceError,
    ProductProjection,
    StudentFeaturizer,
    TextIndex,
    gather_inputs,
    tokenize,
)

TEXTS = ["red oak chair with arms", "steel angle bracket 4 pack", "oak table large oak", "garden hose green 50 ft",
         "brass lamp small", "the red lamp"]


def test_bm25_matches_the_bm25s_baseline() -> None:
    import bm25s

    index = TextIndex.fit(TEXTS)
    ref = bm25s.BM25(k1=1.5, b=0.75)
    ref.index(bm25s.tokenize(TEXTS, lower=True, stopwords="en", show_progress=False), show_progress=False)
    for q in ("red oak", "oak table lamp", "hose", "nothing matches"):
        tok = bm25s.tokenize([q], lower=True, stopwords="en", return_ids=False, show_progress=False)[0]
        expected = ref.get_scores([t for t in tok if t in ref.vocab_dict]) if any(
            t in ref.vocab_dict for t in tok) else np.zeros(len(TEXTS))
        got = index.pair_features([q] * len(TEXTS), TEXTS)[:, 0]
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_text_features_count_terms_overlap_and_unseen_words() -> None:
    index = TextIndex.fit(TEXTS)
    f = index.pair_features(["Red OAK zzz", "brand new word", "the"], ["red oak chair with arms",
                                                                       "brand new word here", "the red lamp"])
    assert tokenize("The Red-Oak chair, 4 arms") == ["red", "oak", "chair", "arms"]
    names = dict(zip(TEXT_FEATURES, f.T, strict=True))
    assert names["query_terms"].tolist() == [3, 3, 0]  # "the" is a stopword
    assert names["text_terms"].tolist() == [4, 4, 2]
    assert names["overlap"].tolist() == [2, 3, 0]  # words no pin has still overlap with a new text
    assert names["overlap_frac"].tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert names["bm25"][1] > names["bm25"][0] > 0 and names["bm25"][2] == 0
    again = TextIndex.from_dict(index.to_dict()).pair_features(["red oak"], ["red oak chair with arms"])
    assert again.tobytes() == index.pair_features(["red oak"], ["red oak chair with arms"]).tobytes()


def test_projection_finds_the_varying_direction() -> None:
    rng = np.random.default_rng(0)
    q = np.ones((500, 6), np.float32)
    p = np.ones((500, 6), np.float32)
    p[:, 2] = rng.normal(0, 3, 500)
    proj = ProductProjection.fit(q, p, k=2)
    assert proj.components.shape == (2, 6) and abs(proj.components[0, 2]) == pytest.approx(1.0, abs=1e-3)
    z = proj.transform(q, p)
    assert z.shape == (500, 2) and abs(np.corrcoef(z[:, 0], p[:, 2])[0, 1]) > 0.999
    with pytest.raises(ValueError, match="one shape"):
        ProductProjection.fit(q, p[:, :3])


def test_matrix_layout_dedup_and_missing_pins(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", n_pins=200, n_queries=60)
    src = HashSource(ds)
    pins = [*list(src.texts)[:5], "ghost"]
    queries = ["oak chair", "garden hose"] * 3
    inputs = gather_inputs(src, queries, pins)
    assert src.calls == [("query", 2), ("pin", 6), ("stats", 6)]  # one read per distinct key
    proj = ProductProjection.fit(inputs.query_vectors[inputs.qi[:5]], inputs.pin_vectors[inputs.pi[:5]], k=3)
    feat = StudentFeaturizer(TextIndex.fit(list(src.texts.values())), proj)
    texts = [src.texts.get(p, "") for p in pins]
    x = feat.matrix(inputs, queries, texts)
    assert x.dtype == np.float32 and x.shape == (6, 1 + 3 + len(TEXT_FEATURES) + len(STAT_FEATURES))
    assert len(feat.feature_names) == x.shape[1] and feat.feature_names[0] == "dot"
    qv, pv = src.query_vectors(queries[:5]), src.pin_vectors(pins[:5])[0]
    np.testing.assert_allclose(x[:5, 0], (qv * pv).sum(axis=1), rtol=1e-5)
    assert np.isnan(x[5, :4]).all() and not np.isnan(x[:5]).any()  # "ghost": no vector
    stats = src.pin_stats(pins)
    np.testing.assert_allclose(x[:, -len(STAT_COLUMNS):-1], np.log1p(stats[:, :-1]), rtol=1e-6)
    np.testing.assert_allclose(x[:, -1], stats[:, -1], rtol=1e-6)  # the rate is not logged


def test_dataset_source_errors(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds", n_pins=100, n_queries=30)
    with pytest.raises(ValueError, match="exactly one of"):
        DatasetFeatureSource(ds)
    src = DatasetFeatureSource(ds, run=tmp_path / "no-run")
    with pytest.raises(FeatureSourceError, match="pin_id 'nope' \\(row 1\\)"):
        src.pin_texts([src.pins["pin_id"].iloc[0], "nope"])
    with pytest.raises(FeatureSourceError, match="searchsage pins embed"):
        src.pin_vectors(["x"])  # the synthetic pins carry no embedding column
