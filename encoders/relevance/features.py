"""The relevance student's features for (query, pin) pairs, and where they are read from.

Features (:meth:`StudentFeaturizer.feature_names`), one float32 column each:

* ``dot`` — query vector · pin vector (SearchSage query tower, frozen pin space);
* ``qp_0..qp_{k-1}`` — the elementwise product ``q ⊙ p`` (D) projected on its top-``k`` principal
  directions, fitted on training pairs and saved with the model (:class:`ProductProjection`);
* ``bm25`` (Lucene IDF over all pins, k1=1.5, b=0.75, a repeated query term counts per repeat, as
  ``bm25s``), ``query_terms`` (distinct),
  ``text_terms``, ``overlap`` (query terms found in the text), ``overlap_frac`` — tokens as the BM25
  baseline makes them (lowercase ``\\w\\w+``, English stopwords removed; :class:`TextIndex`);
* ``log_eng_*`` = ``log1p`` of the pin's engagement counts and ``eng_per_query``
  (:mod:`encoders.relevance.engagement_stats`).

No query-frequency feature: on Home Depot every query's frequency is a count of its judged pairs, so
it would hand the student part of the label.

Vectors and statistics come from a :class:`FeatureSource` (:mod:`encoders.relevance.feature_sources`:
Feast online, or a dataset directory offline). Both give the same matrix for the same pairs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from encoders.relevance.engagement_stats import COUNT_COLUMNS, STAT_COLUMNS

TEXT_FEATURES: tuple[str, ...] = ("bm25", "query_terms", "text_terms", "overlap", "overlap_frac")
STAT_FEATURES: tuple[str, ...] = tuple(f"log_{c}" if c in COUNT_COLUMNS else c for c in STAT_COLUMNS)
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
#: Pairs per chunk when forming ``q ⊙ p`` (bounds memory at ``CHUNK_ROWS × D`` floats).
CHUNK_ROWS = 16_384


class FeatureSourceError(LookupError):
    """A feature cannot be read (view not applied/materialised, pin unknown to the dataset...)."""


# --- text -------------------------------------------------------------------------------------------
def tokenize(text: str) -> list[str]:
    """Lowercase ``\\w\\w+`` tokens without English stopwords (the BM25 baseline's tokens)."""
    stop = _stopwords()
    return [t for t in _TOKEN.findall(text.lower()) if t not in stop]


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(STOPWORDS_EN)


@dataclass
class TextIndex:
    """BM25 statistics of the pin corpus: ``vocab`` (V terms), ``idf (V,)`` float64, ``avgdl``."""

    vocab: list[str]
    idf: np.ndarray
    avgdl: float
    n_docs: int
    k1: float = 1.5
    b: float = 0.75

    @classmethod
    def fit(cls, texts: Sequence[str], k1: float = 1.5, b: float = 0.75) -> TextIndex:
        """Lucene IDF ``ln(1 + (N - df + 0.5) / (df + 0.5))`` over ``texts`` (all pins)."""
        df: dict[str, int] = {}
        total = 0
        for text in texts:
            toks = tokenize(text)
            total += len(toks)
            for t in set(toks):
                df[t] = df.get(t, 0) + 1
        vocab = sorted(df)
        n = len(texts)
        dfs = np.array([df[t] for t in vocab], dtype=np.float64)
        return cls(vocab, np.log1p((n - dfs + 0.5) / (dfs + 0.5)), total / max(n, 1), n, k1, b)

    @cached_property
    def _ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.vocab)}

    def idf_of(self, token: str) -> float:
        """IDF of one token (a token no pin holds has df = 0)."""
        j = self._ids.get(token)
        return float(self.idf[j]) if j is not None else float(np.log1p((self.n_docs + 0.5) / 0.5))

    def to_dict(self) -> dict[str, Any]:
        return {"vocab": self.vocab, "idf": self.idf.tolist(), "avgdl": self.avgdl, "n_docs": self.n_docs,
                "k1": self.k1, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TextIndex:
        return cls(list(d["vocab"]), np.asarray(d["idf"], dtype=np.float64), float(d["avgdl"]), int(d["n_docs"]),
                   float(d["k1"]), float(d["b"]))

    def _matrix(self, texts: list[str], extra: dict[str, int]) -> tuple[sp.csr_matrix, np.ndarray]:
        """Term counts ``(U, V + len(extra))`` and token counts ``(U,)``; unseen terms extend ``extra``."""
        ids, counts, indptr, lengths = [], [], [0], []
        base = len(self.vocab)
        for text in texts:
            toks = tokenize(text)
            lengths.append(len(toks))
            row: dict[int, int] = {}
            for t in toks:
                j = self._ids.get(t)
                if j is None:
                    j = base + extra.setdefault(t, len(extra))
                row[j] = row.get(j, 0) + 1
            ids.extend(row)
            counts.extend(row.values())
            indptr.append(len(ids))
        m = sp.csr_matrix((np.asarray(counts, np.float64), np.asarray(ids, np.int64), np.asarray(indptr, np.int64)),
                          shape=(len(texts), base + len(extra) + 1))
        return m, np.asarray(lengths, dtype=np.float64)

    def pair_features(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """:data:`TEXT_FEATURES` of pairs ``(queries[i], texts[i])`` → ``(N, 5)`` float64."""
        uq, qi = np.unique(np.asarray(queries, dtype=object).astype(str), return_inverse=True)
        ut, ti = np.unique(np.asarray(texts, dtype=object).astype(str), return_inverse=True)
        extra: dict[str, int] = {}
        docs, dl = self._matrix(list(ut), extra)
        qm, _ = self._matrix(list(uq), extra)
        width = len(self.vocab) + len(extra) + 1
        docs.resize((docs.shape[0], width))
        qm.resize((qm.shape[0], width))
        idf = np.concatenate([self.idf, np.full(width - len(self.vocab), np.log1p((self.n_docs + 0.5) / 0.5))])
        tf = docs.data
        norm = np.repeat(self.k1 * (1 - self.b + self.b * dl / max(self.avgdl, 1e-9)), np.diff(docs.indptr))
        weights = sp.csr_matrix((idf[docs.indices] * tf / (tf + norm), docs.indices, docs.indptr),
                                shape=docs.shape)
        binary = sp.csr_matrix((np.ones_like(tf), docs.indices, docs.indptr), shape=docs.shape)
        q_pairs = qm[qi]
        bm25 = np.asarray(q_pairs.multiply(weights[ti]).sum(axis=1)).ravel()
        q_pairs.data[:] = 1.0  # distinct query terms for the overlap features
        overlap = np.asarray(q_pairs.multiply(binary[ti]).sum(axis=1)).ravel()
        q_terms = np.asarray(q_pairs.sum(axis=1)).ravel()
        return np.column_stack([bm25, q_terms, dl[ti], overlap, overlap / np.maximum(q_terms, 1.0)])


# --- vectors --------------------------------------------------------------------------------------
@dataclass
class ProductProjection:
    """``(q ⊙ p - mean) @ components.T``: ``mean (D,)``, ``components (k, D)`` float32."""

    mean: np.ndarray
    components: np.ndarray

    @classmethod
    def fit(cls, q: np.ndarray, p: np.ndarray, k: int = 8, max_rows: int = 50_000, seed: int = 0) -> ProductProjection:
        """Top-``k`` principal directions of ``q ⊙ p`` over (a sample of) paired rows ``(N, D)``."""
        if q.shape != p.shape or q.ndim != 2:
            raise ValueError(f"need two (N, D) arrays of one shape, got {q.shape} and {p.shape}")
        rows = np.arange(len(q))
        if len(rows) > max_rows:
            rows = np.sort(np.random.default_rng(seed).choice(len(rows), max_rows, replace=False))
        z = (q[rows] * p[rows]).astype(np.float64)
        mean = z.mean(axis=0)
        _, _, vt = np.linalg.svd(z - mean, full_matrices=False)
        comps = vt[:k]
        comps = comps * np.where(comps.sum(axis=1, keepdims=True) < 0, -1.0, 1.0)  # deterministic sign
        return cls(mean.astype(np.float32), comps.astype(np.float32))

    @property
    def k(self) -> int:
        return int(self.components.shape[0])

    def transform(self, q: np.ndarray, p: np.ndarray) -> np.ndarray:
        """``(N, D)`` pairs → ``(N, k)`` float32."""
        return ((q * p) - self.mean) @ self.components.T


@dataclass
class PairInputs:
    """Source reads of N pairs, deduplicated: ``query_vectors (Uq, D)``, ``pin_vectors (Up, D)``,
    ``pin_found (Up,)`` bool, ``stats (N, S)`` float64, and row indices ``qi``/``pi`` (N,)."""

    query_vectors: np.ndarray
    pin_vectors: np.ndarray
    pin_found: np.ndarray
    stats: np.ndarray
    qi: np.ndarray
    pi: np.ndarray

    def chunks(self) -> Any:
        """Yield ``(rows slice, q (c, D), p (c, D), found (c,))`` over the pairs."""
        for start in range(0, len(self.qi), CHUNK_ROWS):
            s = slice(start, start + CHUNK_ROWS)
            pi = self.pi[s]
            yield s, self.query_vectors[self.qi[s]], self.pin_vectors[pi], self.pin_found[pi]


class FeatureSource(Protocol):
    """Where vectors and engagement statistics come from (keys are unique, order kept)."""

    def query_vectors(self, queries: list[str]) -> np.ndarray: ...  # (N, D) float32

    def pin_vectors(self, pin_ids: list[str]) -> tuple[np.ndarray, np.ndarray]: ...  # (N, D) f32, (N,) bool

    def pin_stats(self, pin_ids: list[str]) -> np.ndarray: ...  # (N, S) float64, STAT_COLUMNS


def gather_inputs(source: FeatureSource, queries: Sequence[str], pin_ids: Sequence[str],
                  stats: np.ndarray | None = None) -> PairInputs:
    """One read per distinct query and pin; ``stats (N, S)`` overrides the source's (out-of-fold rows)."""
    uq, qi = np.unique(np.asarray(queries, dtype=object).astype(str), return_inverse=True)
    up, pi = np.unique(np.asarray(pin_ids, dtype=object).astype(str), return_inverse=True)
    qv = np.asarray(source.query_vectors(uq.tolist()), dtype=np.float32)
    pv, found = source.pin_vectors(up.tolist())
    pv = np.asarray(pv, dtype=np.float32)
    if len(uq) and len(up) and qv.shape[1] != pv.shape[1]:
        raise FeatureSourceError(f"query vectors are {qv.shape[1]}-d but pin vectors are {pv.shape[1]}-d")
    if stats is None:
        stats = np.asarray(source.pin_stats(up.tolist()), dtype=np.float64)[pi]
    return PairInputs(qv, pv, np.asarray(found, dtype=bool), stats, qi.astype(np.int64), pi.astype(np.int64))


@dataclass
class StudentFeaturizer:
    """The fitted parts of the features: BM25 statistics and the ``q ⊙ p`` projection."""

    text: TextIndex
    projection: ProductProjection

    @property
    def feature_names(self) -> list[str]:
        return ["dot", *(f"qp_{i}" for i in range(self.projection.k)), *TEXT_FEATURES, *STAT_FEATURES]

    def matrix(self, inputs: PairInputs, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Feature matrix ``(N, F)`` float32; pairs whose pin has no vector get NaN vector features."""
        n, k = len(inputs.qi), self.projection.k
        out = np.empty((n, 1 + k + len(TEXT_FEATURES) + len(STAT_FEATURES)), dtype=np.float32)
        for s, q, p, found in inputs.chunks():
            out[s, 0] = np.einsum("ij,ij->i", q, p)
            out[s, 1 : 1 + k] = self.projection.transform(q, p)
            out[s, : 1 + k][~found] = np.nan
        out[:, 1 + k : 1 + k + len(TEXT_FEATURES)] = self.text.pair_features(queries, texts)
        stats = inputs.stats.copy()
        counts = [i for i, c in enumerate(STAT_COLUMNS) if c in COUNT_COLUMNS]
        stats[:, counts] = np.log1p(np.maximum(stats[:, counts], 0.0))
        out[:, 1 + k + len(TEXT_FEATURES) :] = stats
        return out
