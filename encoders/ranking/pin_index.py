"""The ranker's ANN index over the online store's pin embeddings, built once per pin-embedding version.

A *version* (:func:`pin_embedding_version`) is a digest of what decides the stored pin vectors and
costs no Redis round trip: the project, the view's declared D and its materialisation intervals
(from the registry; every ``feast materialize[-incremental]`` adds one), the pin source's size and
modification time, and the online store's address. The index for a version is built from one scan
of the online store (every pin id of the source, fetched in pipelined batches; pins not yet
materialised are left out), written to ``REPO/data/pin_index/<version>/`` (``index.faiss`` + the
ids and texts in ``pins.parquet``) and reused by every later call; older versions are deleted.

Vectors written outside materialisation (``EmbeddingStore.write``) do not change the version:
run ``searchsage feast index --repo R --rebuild`` after such writes. Candidates are re-scored with
their current online values either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from encoders.featurestore.contract import PIN_VIEW, declared_dim
from encoders.featurestore.sources import PINS_FILE

INDEX_DIR = "data/pin_index"
LEGACY_FILES = ("data/pin_index.faiss", "data/pin_index.json")
#: Pin ids per online-store fetch while building.
SCAN_ROWS = 16_384
HNSW_M = 32
EF_SEARCH = 128


@dataclass
class PinIndex:
    """A loaded index: faiss HNSW (inner product), pin ids in index order, their texts."""

    version: str
    index: Any
    ids: list[str]
    texts: dict[str, str]
    directory: Path
    build_seconds: float | None = None

    def search(self, vector: np.ndarray, n: int) -> list[str]:
        """Ids of the ``n`` nearest pins to ``vector`` (inner product)."""
        n = min(n, len(self.ids))
        self.index.hnsw.efSearch = max(EF_SEARCH, n)
        _, found = self.index.search(np.ascontiguousarray(vector[None, :], dtype=np.float32), n)
        return [self.ids[i] for i in found[0] if i >= 0]


def _redacted(conn: str) -> str:
    return ",".join(p for p in conn.split(",") if not p.startswith("password="))


def pin_embedding_version(store: Any, repo: Path, view_name: str = PIN_VIEW,
                          allow_registry_cache: bool = True) -> str:
    """Digest naming the current pin vectors of ``repo`` (see the module docstring)."""

    view = store.get_feature_view(view_name, allow_registry_cache=allow_registry_cache)
    src = Path(repo) / PINS_FILE
    st = src.stat() if src.exists() else None
    online = store.config.online_store
    parts = {
        "project": store.config.project, "view": view_name, "dim": declared_dim(view),
        "intervals": sorted((s.isoformat(), e.isoformat()) for s, e in view.materialization_intervals),
        "source": [st.st_size, st.st_mtime_ns] if st else None,
        "online": [type(online).__name__, _redacted(str(getattr(online, "connection_string", "") or "")),
                   str(getattr(online, "path", "") or "")],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def source_pins(repo: Path) -> tuple[list[str], list[str]]:
    """(pin ids, texts) of the repository's pin source, the latest row per id."""
    src = Path(repo) / PINS_FILE
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found: add your pins with "
                                f"`searchsage feast ingest --repo {repo} --pins FILE` and materialise them")
    table = pq.read_table(src, columns=["pin_id", "text", "event_timestamp"]).sort_by("event_timestamp")
    ids = [str(p) for p in table.column("pin_id").to_pylist()]
    texts = dict(zip(ids, map(str, table.column("text").to_pylist()), strict=True))  # later rows win
    return list(texts), list(texts.values())


def load(repo: Path, version: str) -> PinIndex | None:
    """The persisted index of ``version`` (None if there is none)."""
    import faiss

    d = Path(repo) / INDEX_DIR / version
    if not (d / "index.faiss").is_file() or not (d / "pins.parquet").is_file():
        return None
    table = pq.read_table(d / "pins.parquet")
    ids = [str(p) for p in table.column("pin_id").to_pylist()]
    texts = dict(zip(ids, map(str, table.column("text").to_pylist()), strict=True))
    return PinIndex(version, faiss.read_index(str(d / "index.faiss")), ids, texts, d)


def build(repo: Path, reader: Any, version: str) -> PinIndex:
    """Scan the online store for every source pin, build the HNSW index, persist it under ``version``."""
    import faiss

    t0 = time.perf_counter()
    repo = Path(repo)
    all_ids, all_texts = source_pins(repo)
    index = faiss.IndexHNSWFlat(reader.dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    ids: list[str] = []
    texts: list[str] = []
    for start in range(0, len(all_ids), SCAN_ROWS):
        chunk = all_ids[start : start + SCAN_ROWS]
        matrix, found = reader.fetch(chunk)
        if found.any():
            index.add(np.ascontiguousarray(matrix[found]))
            ids.extend(p for p, f in zip(chunk, found, strict=True) if f)
            texts.extend(t for t, f in zip(all_texts[start : start + SCAN_ROWS], found, strict=True) if f)
    if not ids:
        raise LookupError(f"none of the {len(all_ids)} pins in {repo / PINS_FILE} is in the online store; "
                          f"run `feast -c {repo} materialize-incremental $(date -u +%FT%T)` first")
    root = repo / INDEX_DIR
    tmp = root / f".{version}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    faiss.write_index(index, str(tmp / "index.faiss"))
    pq.write_table(pa.table({"pin_id": pa.array(ids, pa.string()), "text": pa.array(texts, pa.string())}),
                   tmp / "pins.parquet")
    final = root / version
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in root.iterdir():  # one version is kept; a concurrent builder's tmp dir is left alone
        if old.is_dir() and old.name != version and not old.name.startswith("."):
            shutil.rmtree(old, ignore_errors=True)
    for legacy in LEGACY_FILES:
        (repo / legacy).unlink(missing_ok=True)
    return PinIndex(version, index, ids, dict(zip(ids, texts, strict=True)), final, time.perf_counter() - t0)


def load_or_build(repo: Path, reader: Any, version: str, rebuild: bool = False) -> PinIndex:
    """The index of ``version``: from disk when persisted (and not ``rebuild``), else built now."""
    if not rebuild:
        found = load(repo, version)
        if found is not None:
            return found
    return build(repo, reader, version)
