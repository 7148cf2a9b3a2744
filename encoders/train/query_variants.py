"""Query-like variation for pseudo-queries, learned from how real queries differ from their pins' titles.

A cut of a title (:mod:`encoders.train.pseudo_queries`) holds only the title's own words. Real
queries do not: on the Home Depot training pairs 41% of query words are not in the engaged
product's title. Of those, about a sixth are the other number of a title word ("pulls" for
"Pull"), some are words cut short while typing ("picture frame cla"), and most are words the
shopper adds that titles leave out: the room or setting ("bathroom" for a vanity, "outdoor" for a
light, "kitchen" for a faucet), materials, synonyms. :class:`QueryVariants` applies, each with
its own probability per pseudo-query:

* ``inflect_rate``: one word switches between singular and plural (:func:`toggle_plural`);
* ``truncate_rate``: the last word is cut short, as while typing (kept at >= 3 letters);
* ``context_rate``: one *context word* is added. Context words are learned from the training
  pairs (:class:`ContextWords`): the query words that are not in the engaged title, counted per
  product type (the title head's last word, e.g. ``"vanity"``), and drawn in proportion to how
  often shoppers added them to that type.

Pure and deterministic in the generator passed in; a rate of 0 draws nothing from it, so turning a
variation off leaves every other draw unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_SIBILANT_ENDS = ("s", "x", "z", "ch", "sh")


def toggle_plural(word: str) -> str:
    """English singular ↔ plural by the common suffix rules (``"pull"`` ↔ ``"pulls"``,
    ``"box"`` ↔ ``"boxes"``, ``"battery"`` ↔ ``"batteries"``); words that end in ``"ss"`` or
    ``"us"`` and words of fewer than 3 letters are returned unchanged."""
    if len(word) < 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("es") and word[:-2].endswith(_SIBILANT_ENDS):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us")):
        return word[:-1]
    if word.endswith(("ss", "us")) or word.endswith(_SIBILANT_ENDS):
        return word + "es"
    if word.endswith("y") and word[-2] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def _is_variant_of(word: str, title_words: set[str]) -> bool:
    """``word`` is a plural/singular form or a typed-short prefix of a title word."""
    if toggle_plural(word) in title_words:
        return True
    return any(t.startswith(word) or word.startswith(t) for t in title_words if len(t) >= 3)


@dataclass
class ContextWords:
    """Per product type, the words shoppers add that titles leave out.

    ``table[type] = (words, probabilities)``, probabilities summing to 1 over the words that at
    least ``min_word_count`` distinct queries added to that type (so one misspelt or collection-name
    query engaged with many products does not count as many); types with fewer than
    ``min_type_count`` such additions are left out (too little evidence).
    """

    table: dict[str, tuple[list[str], np.ndarray]]

    @classmethod
    def learn(
        cls,
        pairs: Sequence[tuple[Sequence[str], str | None, set[str]]],
        stopwords: frozenset[str],
        min_word_count: int = 3,
        min_type_count: int = 5,
    ) -> ContextWords:
        """``pairs``: one ``(query words, product type or None, title word set)`` per training pair.

        A query word counts as added when it is not a stopword, not a number, not in the title and
        not a plural or prefix variant of a title word."""
        added: dict[str, dict[str, set[tuple[str, ...]]]] = defaultdict(lambda: defaultdict(set))
        for query_words, kind, title in pairs:
            if kind is None:
                continue
            for w in query_words:
                if len(w) < 3 or w in stopwords or w[0].isdigit() or w in title or _is_variant_of(w, title):
                    continue
                added[kind][w].add(tuple(query_words))
        table: dict[str, tuple[list[str], np.ndarray]] = {}
        for kind, by_word in added.items():
            kept = sorted((w, len(qs)) for w, qs in by_word.items() if len(qs) >= min_word_count)
            total = sum(n for _, n in kept)
            if total >= min_type_count:
                table[kind] = ([w for w, _ in kept], np.array([n / total for _, n in kept]))
        return cls(table)

    def draw(self, kind: str | None, rng: np.random.Generator) -> str | None:
        """One context word for product type ``kind``, or None when the type is unknown."""
        entry = self.table.get(kind) if kind is not None else None
        if entry is None:
            return None
        words, p = entry
        return words[int(rng.choice(len(words), p=p))]


@dataclass
class QueryVariantConfig:
    """Per-pseudo-query probabilities of each variation (see the module docstring).
    ``context_prepend``: share of context words put before the query rather than after
    (``"outdoor post light"`` rather than ``"post light outdoor"``)."""

    inflect_rate: float = 0.0
    truncate_rate: float = 0.0
    context_rate: float = 0.0
    context_prepend: float = 0.7

    @classmethod
    def like_real_queries(cls) -> QueryVariantConfig:
        """Rates that bring pseudo-queries near the Home Depot training queries: there, 28% of
        queries hold only title words (cuts alone: 92%)."""
        return cls(inflect_rate=0.3, truncate_rate=0.05, context_rate=0.4)


class QueryVariants:
    """Applies :class:`QueryVariantConfig` variations to the words of one pseudo-query."""

    def __init__(self, config: QueryVariantConfig, context: ContextWords | None = None):
        self.config = config
        self.context = context

    def apply(self, words: list[str], kind: str | None, rng: np.random.Generator) -> list[str]:
        """``words`` of one cut (not empty) and its pin's product type → the varied words."""
        c = self.config
        words = list(words)
        if c.inflect_rate > 0 and rng.random() < c.inflect_rate:
            j = int(rng.integers(len(words)))
            words[j] = toggle_plural(words[j])
        if c.truncate_rate > 0 and rng.random() < c.truncate_rate and len(words[-1]) >= 5 and words[-1].isalpha():
            words[-1] = words[-1][: int(rng.integers(3, len(words[-1])))]
        if c.context_rate > 0 and self.context is not None and rng.random() < c.context_rate:
            extra = self.context.draw(kind, rng)
            if extra is not None and extra not in words:
                words = [extra, *words] if rng.random() < c.context_prepend else [*words, extra]
        return words
