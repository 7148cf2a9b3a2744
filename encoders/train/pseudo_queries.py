"""Pseudo-queries cut from pin titles: query augmentation that covers the whole catalogue.

Engagements cover few pins (on Home Depot, 75% of the eval queries' engaged pins never appear in a
training engagement), so the tower sees little of the pin space. A pseudo-query is a short,
query-like cut of one pin's own text, trained as a (query, pin) pair against that pin's frozen
embedding:

* its length is drawn from the lengths (in words) of the real training queries;
* with probability ``head_share`` it is the *last* words of the title's head (the title up to the
  first `` in `` / `` with `` / ``(`` / ``,`` — on retail titles the product type, e.g.
  ``"shower only faucet"`` from ``"Delta Vero 1-Handle Shower Only Faucet Trim Kit in Chrome"``);
  otherwise an order-preserving random subset of the title's content words;
* optionally, query-like variation learned from the training pairs (plural forms, words cut short,
  context words shoppers add; :mod:`encoders.train.query_variants`);
* with probability ``typo_rate`` one word of four or more letters gets a typo (a deleted, doubled or
  swapped letter) — real queries are misspelt;
* it is normalised with :func:`encoders.normalize.normalize_query`, like every query.

A short cut often fits many pins ("wall mount" is in hundreds of titles), which are then false
negatives of the pin it was cut from. :meth:`PseudoQueries.draw_with_matches` also returns, per
pseudo-query, every pin whose text holds all the words of its cut, so the loss can mask them.

Generation is pure and deterministic in the generator passed in, so a checkpoint that stores the
generator state resumes exactly.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from encoders.normalize import normalize_query
from encoders.train.query_variants import ContextWords, QueryVariants

_WORD = re.compile(r"[a-z0-9][a-z0-9'\-/.]*[a-z0-9]|[a-z0-9]")
_HEAD_END = re.compile(r"\s(?:in|with|for)\s|\(|,")
_STOP = frozenset(
    "a an and or the of in on with for to by from at as is x ft in. ft. cu lb oz pack pk no not only"
    .split()
)


def is_number(word: str) -> bool:
    """A size or model number (``"1/2"``, ``"1-5/8"``, ``"20"``, ``"2-light"``): starts with a digit."""
    return word[0].isdigit()


def title_words(text: str) -> tuple[list[str], list[str]]:
    """``(head_words, content_words)`` of one pin text: the words of the head (before the first
    `` in ``/`` with ``/``(``/``,``) without numbers, and all content words including numbers
    (``"1/2"``, ``"1-5/8"``, ``"1.9"``); stopwords and units are dropped from both."""
    t = html.unescape(text).lower()
    m = _HEAD_END.search(t)
    head = t[: m.start()] if m else t

    def words(s: str) -> list[str]:
        return [w for w in _WORD.findall(s) if w not in _STOP]

    return [w for w in words(head) if not is_number(w)], words(t)


def product_type(text: str) -> str | None:
    """The last word of the title head without numbers (``"sink"`` for ``"KOHLER Memoirs Pedestal
    Bathroom Sink in Cashmere"``), or None when the head has no word."""
    head, _ = title_words(text)
    return head[-1] if head else None


def learn_context_words(
    queries: Sequence[str], pin_idx: Sequence[int], pin_texts: Sequence[str], min_word_count: int = 3
) -> ContextWords:
    """:class:`~encoders.train.query_variants.ContextWords` from training pairs ``(queries[i],
    pin_texts[pin_idx[i]])`` (normalised queries); only the training split may be passed."""
    rows = []
    for q, p in zip(queries, pin_idx, strict=True):
        text = pin_texts[int(p)]
        rows.append((_WORD.findall(q), product_type(text), set(_WORD.findall(html.unescape(text).lower()))))
    return ContextWords.learn(rows, _STOP, min_word_count=min_word_count)


def add_typo(word: str, rng: np.random.Generator) -> str:
    """One deleted, doubled or swapped letter inside ``word`` (first letter kept); short words unchanged."""
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[: i + 1] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


@dataclass
class PseudoQueryConfig:
    """``head_share``: share of pseudo-queries cut from the end of the title head; ``typo_rate``: share
    with one typo; ``max_words``: cap on the drawn length; ``number_weight``: how likely a number is
    picked in a random subset relative to a word (0 = never; a quarter of Home Depot queries hold a
    size or model number)."""

    head_share: float = 0.5
    number_weight: float = 1.0
    typo_rate: float = 0.1
    max_words: int = 6


class PseudoQueries:
    """Draws (pseudo-query, pin index) pairs from ``pin_texts``.

    ``query_lengths``: word counts of real training queries (the length distribution to imitate).
    ``variants``: optional query-like variation applied to each cut before the typo.
    Pins whose text has no content word are never drawn.
    """

    def __init__(
        self,
        pin_texts: Sequence[str],
        query_lengths: Sequence[int],
        config: PseudoQueryConfig | None = None,
        variants: QueryVariants | None = None,
    ):
        self.config = config or PseudoQueryConfig()
        self.variants = variants
        self._words = [title_words(t) for t in pin_texts]
        # per pin: how likely each content word is picked in a random-subset cut (sums to 1; None
        # when no word may be picked), computed once instead of per drawn query
        self._pick: list[np.ndarray | None] = []
        for _, content in self._words:
            w = np.array([self.config.number_weight if is_number(c) else 1.0 for c in content])
            self._pick.append(w / w.sum() if w.sum() > 0 else None)
        self._usable = np.flatnonzero([p is not None for p in self._pick]).astype(np.int64)
        if len(self._usable) == 0:
            raise ValueError("no pin text has a content word to cut pseudo-queries from")
        lengths = np.clip(np.asarray(query_lengths, dtype=np.int64), 1, self.config.max_words)
        self._lengths = lengths if len(lengths) else np.array([2, 3], dtype=np.int64)
        self._postings: dict[str, np.ndarray] | None = None

    def query_for(self, pin: int, rng: np.random.Generator) -> str:
        """One pseudo-query for pin row ``pin``."""
        return self._query_and_cut(pin, rng)[0]

    def matches(self, cut: Sequence[str]) -> np.ndarray:
        """Sorted rows ``(M,)`` int64 of every pin whose content words include all words of ``cut``."""
        if self._postings is None:
            rows: dict[str, list[int]] = {}
            for i, (_, content) in enumerate(self._words):
                for w in set(content):
                    rows.setdefault(w, []).append(i)
            self._postings = {w: np.asarray(r, dtype=np.int64) for w, r in rows.items()}
        lists = sorted((self._postings.get(w, np.empty(0, dtype=np.int64)) for w in set(cut)), key=len)
        out = lists[0] if lists else np.empty(0, dtype=np.int64)
        for other in lists[1:]:
            out = np.intersect1d(out, other, assume_unique=True)
        return out

    def _query_and_cut(self, pin: int, rng: np.random.Generator) -> tuple[str, list[str]]:
        head, content = self._words[pin]
        n = int(self._lengths[rng.integers(len(self._lengths))])
        if head and rng.random() < self.config.head_share:
            words = head[-min(n, len(head)) :]
        else:
            pick = self._pick[pin]
            n = min(n, int(np.count_nonzero(pick)))
            keep = np.sort(rng.choice(len(content), size=n, replace=False, p=pick))
            words = [content[i] for i in keep]
        cut = words
        if self.variants is not None:
            words = self.variants.apply(words, head[-1] if head else None, rng)
        if rng.random() < self.config.typo_rate:
            j = int(rng.integers(len(words)))
            words = [*words[:j], add_typo(words[j], rng), *words[j + 1 :]]
        return normalize_query(" ".join(words)), cut

    def draw(self, n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
        """``n`` pairs of distinct random pins: ``(queries, pin_idx (n,) int64)``."""
        queries, pins, _ = self._draw(n, rng)
        return queries, pins

    def draw_with_matches(self, n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray, list[np.ndarray]]:
        """Like :meth:`draw` (same draws from ``rng``), plus per pair the rows of every pin that
        matches its cut (:meth:`matches`; always includes the pair's own pin)."""
        queries, pins, cuts = self._draw(n, rng)
        return queries, pins, [self.matches(c) for c in cuts]

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray, list[list[str]]]:
        pins = rng.choice(self._usable, size=min(n, len(self._usable)), replace=False)
        drawn = [self._query_and_cut(int(p), rng) for p in pins]
        return [q for q, _ in drawn], pins.astype(np.int64), [c for _, c in drawn]
