"""Embedding explorer: live query embedding (ONNX bundle) → nearest pins (faiss HNSW) + online-store check.

No Streamlit here. :class:`PinSearch` holds the query tower and an inner-product HNSW index over
pin embeddings: the pins table's ``embedding`` column when its width matches the tower, else the
bundle's pin tower embeds the pin texts once. :func:`online_lookup` asks the Redis online store
(``query_embedding`` view, via :mod:`encoders.redis_records`) whether the query was materialised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from dashboard.loaders import PinTable, load_pins
from encoders.eval.retrieval import HNSWIndex
from encoders.normalize import normalize_query
from encoders.runtime import BundleEncoder


@dataclass
class QueryHits:
    """One search: the normalised query, its ``(D,)`` float32 embedding and the hit table."""

    query: str
    normalized: str
    embedding: np.ndarray
    hits: pd.DataFrame  # rank, pin_id, text, score
    seconds: float


class PinSearch:
    """Query tower of ``bundle`` + faiss HNSW over the pins of ``pins_path`` (``(N, D)`` float32, L2-normalised)."""

    def __init__(self, bundle: str | Path, pins_path: str | Path, threads: int = 1) -> None:
        self.encoder = BundleEncoder(bundle, threads=threads)
        self.pins: PinTable = load_pins(pins_path)
        emb = self.pins.embedding
        self.pin_source = "pins table embedding column"
        if emb is None or emb.shape[1] != self.encoder.dim:
            pin_tower = BundleEncoder(bundle, kind="pin", threads=threads)
            emb = pin_tower.encode(self.pins.texts)
            self.pin_source = f"embedded by the bundle's pin tower ({pin_tower.model_version})"
        self.index = HNSWIndex(emb)
        self.dim = self.encoder.dim

    @property
    def model_version(self) -> str:
        return str(self.encoder.model_version)

    def search(self, query: str, k: int = 10) -> QueryHits:
        """Embed ``query`` live and return its ``k`` nearest pins by inner product."""
        import time

        t0 = time.perf_counter()
        q = self.encoder.encode([query])  # (1, D)
        ids, scores = self.index.search(q, k)
        rows = [{"rank": r + 1, "pin_id": self.pins.ids[i], "text": self.pins.texts[i], "score": float(s)}
                for r, (i, s) in enumerate(zip(ids[0], scores[0], strict=True)) if i >= 0]
        return QueryHits(query, normalize_query(query), q[0], pd.DataFrame(rows, columns=["rank", "pin_id", "text", "score"]),
                         time.perf_counter() - t0)


@dataclass
class OnlineLookup:
    """Whether the online store holds the query: ``state`` is ``found``, ``missing``, ``not configured``
    or ``unavailable`` (with ``message``); ``cosine`` compares the stored vector with the live one."""

    state: str
    message: str = ""
    model_version: str | None = None
    current: bool | None = None
    cosine: float | None = None


def online_lookup(repo: Path | None, normalized: str, live: np.ndarray, model_version: str) -> OnlineLookup:
    """Look ``normalized`` up in the ``query_embedding`` view of ``repo``'s Redis online store.

    ``repo is None`` → ``not configured``. Connection problems → ``unavailable`` with the reason.
    """
    if repo is None:
        return OnlineLookup("not configured", "online store not configured: start the dashboard with "
                            "--repo feature_repo (and SEARCHSAGE_REDIS=host:port) to check Redis")
    from encoders.redis_records.connection import RedisUnavailable
    from encoders.serving.config import ServeConfigError
    from encoders.serving.store import make_query_store

    try:
        store = make_query_store(None, dim=int(live.shape[0]), repo=Path(repo)).store
        matrix, found, versions = store.fetch_with_versions([normalized])
    except (RedisUnavailable, ServeConfigError, OSError, ValueError) as exc:
        return OnlineLookup("unavailable", f"online store unavailable: {exc}")
    if not found[0]:
        return OnlineLookup("missing", f"{normalized!r} is not in the online store (never materialised)")
    vec = matrix[0]
    denom = float(np.linalg.norm(vec) * np.linalg.norm(live)) or 1.0
    return OnlineLookup("found", "", versions[0], versions[0] == model_version, float(vec @ live) / denom)
