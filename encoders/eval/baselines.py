"""Baseline retrievers: BM25 over pin texts, and the zero-shot base model (mean pooling both sides).

* **BM25** (``bm25s``, Lucene variant, k1=1.5, b=0.75): texts are lowercased, split on the
  ``\\b\\w\\w+\\b`` pattern (tokens of two or more word characters) and English stopwords are
  removed; no stemming. Results with score 0 (no query term in common) are *not retrieved* and
  come back as ``-1`` — a lexical system does not get credit for an arbitrary order of misses.
* **Zero-shot**: the base Transformer with masked mean pooling and L2 normalisation, used for
  queries and pins alike — the untrained counterpart of a mean-pooling query tower with an
  identity readout.
* **Blend**: reciprocal-rank fusion of two rankings (``score = Σ 1 / (c + rank)``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

BM25_STOPWORDS = "en"


class BM25Retriever:
    """BM25 index over ``texts`` (position ``i`` = index row ``i``)."""

    def __init__(self, texts: Sequence[str], k1: float = 1.5, b: float = 0.75, progress: bool = False):
        import bm25s

        logging.getLogger("bm25s").setLevel(logging.WARNING)  # bm25s sets its own logger to DEBUG
        if len(texts) == 0:
            raise ValueError("BM25 needs at least one document")
        self._bm25s = bm25s
        self.progress = progress
        tokens = bm25s.tokenize(list(texts), lower=True, stopwords=BM25_STOPWORDS, show_progress=progress)
        self.retriever = bm25s.BM25(k1=k1, b=b)
        self.retriever.index(tokens, show_progress=progress)
        self.n_docs = len(texts)

    def search(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` rows per query → ``(ids (Q, k) int64, scores (Q, k) float32)``; ``-1``/0 pad misses."""
        kk = min(k, self.n_docs)
        q = len(queries)
        ids = np.full((q, kk), -1, dtype=np.int64)
        scores = np.zeros((q, kk), dtype=np.float32)
        if q == 0:
            return ids, scores
        tok = self._bm25s.tokenize(
            list(queries), lower=True, stopwords=BM25_STOPWORDS, return_ids=False, show_progress=False
        )
        vocab = self.retriever.vocab_dict
        keep = [i for i, t in enumerate(tok) if any(w in vocab for w in t)]
        if keep:
            docs, sc = self.retriever.retrieve(
                [[w for w in tok[i] if w in vocab] for i in keep], k=kk, show_progress=self.progress, n_threads=1
            )
            docs = np.asarray(docs, dtype=np.int64)
            sc = np.asarray(sc, dtype=np.float32)
            docs[sc <= 0] = -1
            sc[sc <= 0] = 0.0
            ids[keep], scores[keep] = docs, sc
        return ids, scores


def reciprocal_rank_fusion(rankings: Sequence[np.ndarray], k: int, c: float = 60.0) -> np.ndarray:
    """Fuse ``(Q, K_i)`` rankings of index rows (``-1`` = empty) → ``(Q, k)`` int64, ``-1`` padded.

    Each list contributes ``1 / (c + rank)`` (rank 1-based) to the rows it holds; ties break on
    the lower row. Only rows present in some list can be returned.
    """
    if not rankings:
        raise ValueError("need at least one ranking to fuse")
    q = rankings[0].shape[0]
    out = np.full((q, k), -1, dtype=np.int64)
    for i in range(q):
        score: dict[int, float] = {}
        for r in rankings:
            for pos, row in enumerate(r[i]):
                if row >= 0:
                    score[int(row)] = score.get(int(row), 0.0) + 1.0 / (c + pos + 1)
        best = sorted(score.items(), key=lambda t: (-t[1], t[0]))[:k]
        out[i, : len(best)] = [row for row, _ in best]
    return out


def zero_shot_tower(base_model: str | Path, max_length: int = 32):  # -> QueryTower (lazy torch import)
    """The untrained mean-pooling tower: base model → masked mean → identity readout → L2 norm."""
    from encoders.model.tower import QueryTower, TowerConfig

    cfg = TowerConfig(
        base_model=str(base_model), pooling="mean", normalize=True, max_length=max_length, readout_init="identity"
    )
    return QueryTower(cfg).eval()


def encode_with_tower(
    tower, texts: Sequence[str], as_query: bool, max_length: int, batch_size: int = 128, progress: bool = False
) -> np.ndarray:
    """Encode ``texts`` with a :class:`~encoders.model.tower.QueryTower` → ``(N, D)`` float32.

    ``as_query=True`` normalises the text with :mod:`encoders.normalize` first (pins are not).
    """
    from encoders.model.tower import encode_texts, load_tokenizer

    tok = load_tokenizer(tower.config.base_model)
    emb = encode_texts(
        tower, tok, list(texts), max_length=max_length, batch_size=batch_size,
        normalize_as_query=as_query, progress=progress,
    )
    return emb.numpy().astype(np.float32, copy=False)


def pin_tower_matches_zero_shot(dataset_dir: str | Path, base_model: str | Path) -> bool:
    """True when ``pin_tower.json`` says the stored pin embeddings are ``base_model`` + mean pooling.

    Then the zero-shot baseline reuses ``pins.parquet:embedding`` instead of re-encoding all pins.
    The record must name the same model directory (after resolving paths, or the same
    ``model_fingerprint``), ``pooling: mean`` and an fp32 runtime (torch or onnx-fp32, which agree to
    the export's parity threshold; int8 pin vectors are a different space).
    """
    meta_path = Path(dataset_dir) / "pin_tower.json"
    if not meta_path.exists():
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    recorded = meta.get("base_model")
    if not recorded or str(meta.get("pooling", "")).lower() != "mean":
        return False
    if meta.get("readout") not in (None, "identity", "none"):
        return False
    if meta.get("runtime") == "onnx-int8":  # int8 moves the pin vectors (cosine ~0.997 to fp32)
        return False
    try:
        if Path(str(recorded)).expanduser().resolve() == Path(base_model).expanduser().resolve():
            return True
        fingerprint = meta.get("model_fingerprint")
        if not fingerprint:
            return False
        from encoders.data.pin_embeddings import model_fingerprint

        return bool(fingerprint == model_fingerprint(base_model))  # same model copied elsewhere
    except (OSError, ImportError):
        return False
