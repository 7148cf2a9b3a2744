"""Where the relevance student's vectors and engagement statistics come from.

:class:`FeastFeatureSource` reads a materialised Feast repository (stock ``get_online_features`` for
query vectors and engagement statistics, :class:`~encoders.redis_records.embeddings.EmbeddingStore`
for pin vectors); :class:`DatasetFeatureSource` reads a dataset directory + an ONNX bundle or a tower
run, no Redis, for training at scale. Both give the same feature matrix for the same pairs (tested
against a real redis-server).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encoders.featurestore.contract import PIN_JOIN_KEY, PIN_VIEW, RANKER_QUERY_SERVICE, declared_dim
from encoders.relevance.engagement_stats import STAT_COLUMNS, VIEW_NAME
from encoders.relevance.features import FeatureSourceError


class FeastFeatureSource:
    """Features from a materialised Feast repository: stock ``get_online_features`` on the
    ``ranker_query`` service (stored or live-encoded query vectors) and on ``pin_engagement``;
    pin vectors through :class:`EmbeddingStore` (bit-identical to stock, one round trip)."""

    def __init__(self, repo: str | Path, store: Any = None, chunk: int = 1024):
        from feast import FeatureStore

        self.repo = Path(repo)
        self.store = store if store is not None else FeatureStore(repo_path=str(self.repo))
        self.chunk = chunk
        self._pins: Any = None

    def query_vectors(self, queries: list[str]) -> np.ndarray:
        from encoders.normalize import normalize_query

        service = self.store.get_feature_service(RANKER_QUERY_SERVICE)
        rows: list[Any] = []
        for start in range(0, len(queries), self.chunk):
            part = queries[start : start + self.chunk]
            resp = self.store.get_online_features(
                features=service, entity_rows=[{"query": normalize_query(q), "query_text": q} for q in part]).to_dict()
            rows.extend(resp["query_vector"])
        if any(v is None for v in rows):
            raise FeatureSourceError(f"{self.repo}: the query_vector view returned no vector for some queries")
        return np.asarray(rows, dtype=np.float32).reshape(len(queries), -1)

    def pin_vectors(self, pin_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        if self._pins is None:
            from encoders.ranking.ranker import embedding_reader

            dim = declared_dim(self.store.get_feature_view(PIN_VIEW))
            self._pins = embedding_reader(self.store, PIN_VIEW, dim or 0)
        return self._pins.fetch(pin_ids)

    def pin_stats(self, pin_ids: list[str]) -> np.ndarray:
        try:
            self.store.get_feature_view(VIEW_NAME)
        except Exception as exc:
            raise FeatureSourceError(
                f"feature view {VIEW_NAME!r} is not in the registry of {self.repo}: run `searchsage relevance "
                f"pin-stats --data DIR --repo {self.repo}`, then `feast -c {self.repo} apply` and "
                f"`materialize-incremental`") from exc
        out = np.zeros((len(pin_ids), len(STAT_COLUMNS)), dtype=np.float64)
        for start in range(0, len(pin_ids), self.chunk):
            part = pin_ids[start : start + self.chunk]
            resp = self.store.get_online_features(features=[f"{VIEW_NAME}:{c}" for c in STAT_COLUMNS],
                                                  entity_rows=[{PIN_JOIN_KEY: p} for p in part]).to_dict()
            out[start : start + len(part)] = pd.DataFrame({c: resp[c] for c in STAT_COLUMNS}).astype(
                np.float64).fillna(0.0).to_numpy()
        return out


class DatasetFeatureSource:
    """Features straight from a dataset directory, no Redis: query vectors from an ONNX ``bundle``
    (pin vectors from its pin tower, as Feast materialises them) or from a tower ``run`` (pin
    vectors from ``pins.parquet:embedding``, the frozen space); engagement statistics computed from
    ``engagements.parquet`` exactly as ``searchsage relevance pin-stats`` writes them.

    With a bundle, texts are encoded in materialisation's batches (onnxruntime results move by an
    ulp with batch composition): pin vectors are bit-identical to a repository materialised from the
    dataset's pins, query vectors to one that materialised the same set of queries; queries the
    repository encodes live agree to ~1e-7."""

    def __init__(self, dataset_dir: str | Path, bundle: str | Path | None = None, run: str | Path | None = None,
                 threads: int = 2, stats_config: Any = None):
        if (bundle is None) == (run is None):
            raise ValueError("DatasetFeatureSource needs exactly one of bundle= (ONNX) or run= (tower run)")
        self.dataset_dir, self.bundle, self.run = Path(dataset_dir), bundle, run
        self.threads, self.stats_config = threads, stats_config
        self._pin_matrix: np.ndarray | None = None
        self._encoders: dict[str, Any] = {}

    @cached_property
    def pins(self) -> pd.DataFrame:
        """``pin_id`` → ``text`` (and ``embedding`` when present), indexed by pin id."""
        from encoders.data.schema import PINS, DatasetPaths, read_table

        table = read_table(DatasetPaths(self.dataset_dir).pins, PINS)
        cols = ["pin_id", "text"] + (["embedding"] if self.run is not None and "embedding" in table.column_names else [])
        return table.select(cols).to_pandas().set_index("pin_id", drop=False)

    @cached_property
    def stats_table(self) -> pd.DataFrame:
        from encoders.relevance.engagement_stats import pin_engagement_stats, read_engagements

        return pin_engagement_stats(read_engagements(self.dataset_dir), self.stats_config)

    def query_vectors(self, queries: list[str]) -> np.ndarray:
        if self.bundle is not None:  # in materialisation's batches: same query set -> same bits
            return self._encode("query", list(queries))
        import torch

        from encoders.model.tower import QueryTower, encode_texts, load_tokenizer

        torch.set_num_threads(self.threads)
        if "tower" not in self._encoders:
            self._encoders["tower"] = QueryTower.load(self.run)  # type: ignore[arg-type]
        tower = self._encoders["tower"]
        tok = load_tokenizer(tower.config.base_model)
        return encode_texts(tower, tok, queries, max_length=tower.config.max_length).numpy().astype(np.float32)

    def pin_vectors(self, pin_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        idx = pd.Index(self.pins["pin_id"]).get_indexer(pd.Index(pin_ids, dtype=object))
        found = idx >= 0
        if self.run is not None:
            if "embedding" not in self.pins:
                raise FeatureSourceError(f"{self.dataset_dir / 'pins.parquet'} has no embedding column: run "
                                         f"`searchsage pins embed {self.dataset_dir}` first")
            emb = self.pins["embedding"].to_numpy()
            dim = len(emb[0]) if len(emb) else 0
            out = np.zeros((len(pin_ids), dim), dtype=np.float32)
            if found.any():
                out[found] = np.stack(emb[idx[found]]).astype(np.float32)
            return out, found
        matrix = self._bundle_pins()
        out = np.zeros((len(pin_ids), matrix.shape[1]), dtype=np.float32)
        out[found] = matrix[idx[found]]
        return out, found

    def _bundle_pins(self) -> np.ndarray:
        """Every pin of the dataset through the bundle's pin tower, batched exactly as the
        ``pin_embedding`` materialisation batches them (unique texts, sorted, chunks of 4096), so the
        vectors are bit-identical to the ones a repository materialised from these pins serves."""
        if self._pin_matrix is None:
            texts = self.pins["text"].astype(str).to_numpy().astype(object)
            uniq, inverse = np.unique(texts, return_inverse=True)
            self._pin_matrix = self._encode("pin", uniq.tolist())[inverse]
        return self._pin_matrix

    def _encode(self, kind: str, texts: list[str]) -> np.ndarray:
        from encoders.featurestore.udfs import CHUNK_ROWS as MAT_CHUNK
        from encoders.runtime import BundleEncoder

        enc = self._encoders.get(kind)
        if enc is None:
            enc = self._encoders[kind] = BundleEncoder(self.bundle, kind=kind, threads=self.threads)  # type: ignore[arg-type]
        parts = [enc.encode(texts[s : s + MAT_CHUNK]) for s in range(0, len(texts), MAT_CHUNK)]
        return np.concatenate(parts) if parts else np.zeros((0, enc.dim), dtype=np.float32)

    def pin_stats(self, pin_ids: list[str]) -> np.ndarray:
        from encoders.relevance.engagement_stats import stats_matrix

        return stats_matrix(self.stats_table, pin_ids)

    def pin_texts(self, pin_ids: Sequence[str]) -> list[str]:
        """Texts of ``pin_ids``; an unknown id raises :class:`FeatureSourceError` naming it."""
        idx = pd.Index(self.pins["pin_id"]).get_indexer(pd.Index(list(pin_ids), dtype=object))
        if (idx < 0).any():
            bad = int(np.flatnonzero(idx < 0)[0])
            raise FeatureSourceError(f"pin_id {pin_ids[bad]!r} (row {bad}) is not in {self.dataset_dir / 'pins.parquet'}")
        return self.pins["text"].astype(str).to_numpy()[idx].tolist()


class StoredQueryVectors:
    """A feature source whose query vectors were read once up front, as a ranker finds them in the
    online store (SearchSage materialises them, or computed them when retrieving the candidates).

    ``prefetch(queries)`` asks the wrapped ``source`` for the vectors of ``queries`` and keeps them;
    ``query_vectors`` then answers from memory (a query not prefetched goes to the wrapped source).
    Pin vectors and statistics are the wrapped source's. Used to time a student's scoring without
    the query encoding that serving pays once per query, not per scored pair.
    """

    def __init__(self, source: Any):
        self.source = source
        self._vectors: dict[str, np.ndarray] = {}

    def prefetch(self, queries: Sequence[str]) -> None:
        """Read the vectors of the distinct ``queries`` not yet held (one call to the source)."""
        todo = [q for q in dict.fromkeys(str(q) for q in queries) if q not in self._vectors]
        if todo:
            vecs = np.asarray(self.source.query_vectors(todo), dtype=np.float32)
            self._vectors.update(zip(todo, vecs, strict=True))

    def query_vectors(self, queries: list[str]) -> np.ndarray:
        self.prefetch(queries)
        if not queries:
            return np.asarray(self.source.query_vectors([]), dtype=np.float32)
        return np.stack([self._vectors[str(q)] for q in queries])

    def pin_vectors(self, pin_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        return self.source.pin_vectors(pin_ids)

    def pin_stats(self, pin_ids: list[str]) -> np.ndarray:
        return self.source.pin_stats(pin_ids)

    def pin_texts(self, pin_ids: Sequence[str]) -> list[str]:
        return self.source.pin_texts(pin_ids)

