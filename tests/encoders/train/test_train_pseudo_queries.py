from __future__ import annotations

import numpy as np
import pytest

from encoders.train.pseudo_queries import PseudoQueries, PseudoQueryConfig, add_typo, title_words

TITLES = [
    "Delta Vero 1-Handle Shower Only Faucet Trim Kit in Chrome (Valve Not Included)",
    "Whirlpool 1.9 cu. ft. Over the Range Convection Microwave in Stainless Steel",
    "K&amp;H Pet Products 25-Watt Stainless Steel Thermal Bowl - 120 oz.",
    "12 in. x 8 ft.",  # numbers only: drawn only when numbers may be picked
    "In. x Ft.",  # no content word: never drawn
]


def test_title_words_head_stops_at_in_and_numbers_stay_in_the_content() -> None:
    head, content = title_words(TITLES[0])
    assert head == ["delta", "vero", "shower", "faucet", "trim", "kit"]
    assert content[-2:] == ["valve", "included"] and "1-handle" in content and "in" not in content
    assert title_words(TITLES[1])[1][:2] == ["whirlpool", "1.9"]
    assert title_words(TITLES[2])[0][:2] == ["k", "h"]  # HTML entities are unescaped, '&' splits
    assert title_words(TITLES[3]) == ([], ["12", "8"])
    assert title_words(TITLES[4]) == ([], [])


def test_head_cut_is_the_end_of_the_head() -> None:
    gen = PseudoQueries(TITLES, query_lengths=[2], config=PseudoQueryConfig(head_share=1.0, typo_rate=0.0))
    rng = np.random.default_rng(0)
    assert gen.query_for(0, rng) == "trim kit"
    assert gen.query_for(1, rng) == "convection microwave"


def test_subset_cut_keeps_title_order_and_only_title_words() -> None:
    gen = PseudoQueries(TITLES, query_lengths=[3], config=PseudoQueryConfig(head_share=0.0, typo_rate=0.0))
    rng = np.random.default_rng(1)
    _, content = title_words(TITLES[1])
    for _ in range(50):
        words = gen.query_for(1, rng).split()
        assert len(words) == 3
        positions = [content.index(w) for w in words]
        assert positions == sorted(positions)


def test_draw_is_deterministic_distinct_and_skips_empty_texts() -> None:
    gen = PseudoQueries(TITLES, query_lengths=[1, 2, 3, 4])
    a = gen.draw(10, np.random.default_rng(7))
    b = gen.draw(10, np.random.default_rng(7))
    assert a[0] == b[0] and np.array_equal(a[1], b[1])
    assert sorted(a[1].tolist()) == [0, 1, 2, 3]  # distinct pins; pin 4 has no content word
    assert all(q == q.lower().strip() for q in a[0])
    no_numbers = PseudoQueries(TITLES, query_lengths=[2], config=PseudoQueryConfig(number_weight=0.0))
    assert sorted(no_numbers.draw(10, np.random.default_rng(0))[1].tolist()) == [0, 1, 2]


def test_number_weight_controls_numbers_in_subset_cuts() -> None:
    def numbers(weight: float) -> int:
        cfg = PseudoQueryConfig(head_share=0.0, typo_rate=0.0, number_weight=weight)
        gen, rng = PseudoQueries(TITLES[:2], query_lengths=[3], config=cfg), np.random.default_rng(0)
        return sum(w[0].isdigit() for _ in range(200) for w in gen.query_for(1, rng).split())

    assert numbers(0.0) == 0
    assert 0 < numbers(0.5) < numbers(1.0)


def test_typo_changes_one_letter_and_keeps_the_first() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        t = add_typo("faucet", rng)
        assert t != "faucet" and t[0] == "f" and abs(len(t) - 6) <= 1
    assert add_typo("kit", rng) == "kit"


def test_no_usable_text_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no pin text has a content word"):
        PseudoQueries(["In.", ""], query_lengths=[2])


def test_matches_are_the_pins_holding_every_word_of_the_cut() -> None:
    gen = PseudoQueries(TITLES, query_lengths=[2])
    assert gen.matches(["stainless", "steel"]).tolist() == [1, 2]
    assert gen.matches(["steel", "bowl"]).tolist() == [2]
    assert gen.matches(["12"]).tolist() == [3]
    assert gen.matches(["steel", "nothing"]).tolist() == []


def test_draw_with_matches_draws_the_same_and_includes_the_own_pin() -> None:
    gen = PseudoQueries(TITLES, query_lengths=[1, 2, 3], config=PseudoQueryConfig(typo_rate=0.5))
    for seed in range(5):
        queries, pins = gen.draw(4, np.random.default_rng(seed))
        q2, p2, found = gen.draw_with_matches(4, np.random.default_rng(seed))
        assert q2 == queries and np.array_equal(p2, pins)
        assert all(int(p) in m.tolist() for p, m in zip(pins, found, strict=True))
