from __future__ import annotations

import numpy as np
import pytest

from encoders.train.pseudo_queries import PseudoQueries, PseudoQueryConfig, learn_context_words, product_type
from encoders.train.query_variants import ContextWords, QueryVariantConfig, QueryVariants, toggle_plural

VANITY = "Glacier Bay Bannister 24 in. W Vanity in White with Cultured Marble Top"
LIGHT = "Hampton Bay 1-Light Black Outdoor Wall Lantern Light"


@pytest.mark.parametrize(("word", "other"), [
    ("pull", "pulls"), ("box", "boxes"), ("battery", "batteries"), ("bench", "benches"), ("key", "keys"),
])
def test_toggle_plural_both_ways(word: str, other: str) -> None:
    assert toggle_plural(word) == other
    assert toggle_plural(other) == word


@pytest.mark.parametrize("word", ["glass", "cactus", "1/2", "x", "2-light"])
def test_toggle_plural_leaves_unsafe_words(word: str) -> None:
    expected = {"glass": "glasses", "cactus": "cactuses"}.get(word, word)
    assert toggle_plural(word) == expected


def test_product_type_is_the_last_head_word() -> None:
    assert product_type(VANITY) == "vanity"
    assert product_type(LIGHT) == "light"
    assert product_type("12 in. x 8 ft.") is None


def test_context_words_count_distinct_queries_and_skip_title_words_and_variants() -> None:
    queries = ["bathroom vanity", "24 inch bathroom vanity", "bathroom vanities", "bathroom vanity",
               "white vanity", "vanity sinl", "vanity sinl", "vanity sinl", "bath vanity", "bath vanity top"]
    # the same misspelt query engaged three times counts once; 'white' and 'top' are in the title,
    # 'vanities' is a plural of a title word, numbers never count
    ctx = learn_context_words(queries, [0] * len(queries), [VANITY], min_word_count=2)
    words, p = ctx.table["vanity"]
    assert dict(zip(words, p.tolist(), strict=True)) == pytest.approx({"bathroom": 3 / 5, "bath": 2 / 5})
    assert ctx.draw("vanity", np.random.default_rng(0)) in {"bathroom", "bath"}
    assert ctx.draw("faucet", np.random.default_rng(0)) is None
    assert ContextWords.learn([], frozenset()).table == {}


def test_context_words_need_enough_evidence_per_type() -> None:
    ctx = learn_context_words(["bathroom vanity", "bath vanity"], [0, 0], [VANITY], min_word_count=1)
    assert ctx.table == {}  # 2 additions < min_type_count 5


def test_variants_apply_each_variation_at_rate_one() -> None:
    ctx = ContextWords({"light": (["outdoor"], np.array([1.0]))})
    rng = np.random.default_rng(0)
    only_plural = QueryVariants(QueryVariantConfig(inflect_rate=1.0))
    out = only_plural.apply(["wall", "lantern"], "light", rng)
    assert sorted(out) in (["lantern", "walls"], ["lanterns", "wall"])
    cut = QueryVariants(QueryVariantConfig(truncate_rate=1.0)).apply(["wall", "lantern"], "light", rng)
    assert cut[0] == "wall" and "lantern".startswith(cut[1]) and 3 <= len(cut[1]) < 7
    before = QueryVariants(QueryVariantConfig(context_rate=1.0, context_prepend=1.0), ctx)
    assert before.apply(["wall", "lantern"], "light", rng) == ["outdoor", "wall", "lantern"]
    after = QueryVariants(QueryVariantConfig(context_rate=1.0, context_prepend=0.0), ctx)
    assert after.apply(["wall", "lantern"], "light", rng) == ["wall", "lantern", "outdoor"]
    assert after.apply(["outdoor", "lantern"], "light", rng) == ["outdoor", "lantern"]  # no repeat
    assert after.apply(["wall", "lantern"], "vanity", rng) == ["wall", "lantern"]  # unknown type


def test_rates_of_zero_draw_nothing_so_other_draws_are_unchanged() -> None:
    cfg = PseudoQueryConfig(typo_rate=0.3)
    plain = PseudoQueries([VANITY, LIGHT], query_lengths=[2, 3], config=cfg)
    off = PseudoQueries([VANITY, LIGHT], query_lengths=[2, 3], config=cfg,
                        variants=QueryVariants(QueryVariantConfig(), ContextWords({})))
    a, b = plain.draw(2, np.random.default_rng(3)), off.draw(2, np.random.default_rng(3))
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    for _ in range(20):
        assert plain.query_for(0, np.random.default_rng(5)) == off.query_for(0, np.random.default_rng(5))


def test_like_real_queries_adds_words_outside_the_title() -> None:
    ctx = ContextWords({"vanity": (["bathroom"], np.array([1.0])), "light": (["outdoor"], np.array([1.0]))})
    gen = PseudoQueries([VANITY, LIGHT], query_lengths=[2], config=PseudoQueryConfig(typo_rate=0.0),
                        variants=QueryVariants(QueryVariantConfig.like_real_queries(), ctx))
    rng = np.random.default_rng(0)
    added = sum(w in {"bathroom", "outdoor"} for _ in range(400) for w in gen.query_for(0, rng).split())
    assert 0.3 * 400 < added < 0.5 * 400  # context_rate 0.4
