"""The encoder inside Feast: batch UDFs for materialisation and the on-demand (live) transform.

The functions live in this importable module, not in ``feature_repo/``, so Feast's registry
(which pickles UDFs with dill) stores them *by reference* and any process — the ``feast`` CLI,
a Ray worker, a ranker — re-imports them and gets the same code.

Which bundle: ``$SEARCHSAGE_BUNDLE`` (a ``searchsage export`` directory with ``query/`` and
``pin/``), variant ``$SEARCHSAGE_BUNDLE_VARIANT`` (default ``fp32``: int8 output depends on batch
composition, so a live embedding would not match the materialised one). Each tower is loaded
once per process (:func:`get_encoder`) and reused for every batch.

Pin-space feedback (:mod:`encoders.model.pin_feedback`): with ``$SEARCHSAGE_PIN_FEEDBACK`` set to a
dataset's ``pins.parquet``, the query tower's embeddings — materialised and live alike — are refined
towards the mean of their top ``$SEARCHSAGE_PRF_K`` (default 5) pins with weight
``$SEARCHSAGE_PRF_WEIGHT`` (default 0.1), and ``model_version`` carries the feedback's tag, exactly as
``searchsage encode/serve --pin-feedback`` do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

BUNDLE_ENV = "SEARCHSAGE_BUNDLE"
VARIANT_ENV = "SEARCHSAGE_BUNDLE_VARIANT"
THREADS_ENV = "SEARCHSAGE_ENCODER_THREADS"
PIN_FEEDBACK_ENV = "SEARCHSAGE_PIN_FEEDBACK"
PRF_K_ENV = "SEARCHSAGE_PRF_K"
PRF_WEIGHT_ENV = "SEARCHSAGE_PRF_WEIGHT"
#: Feature-view tag naming the bundle tower that produces its ``embedding`` (query|pin).
TOWER_TAG = "searchsage.tower"
#: Rows encoded per progress step inside a materialisation batch.
CHUNK_ROWS = 4096


class BundleDimMismatch(ValueError):
    """The bundle's D differs from the feature view's declared ``embedding`` vector length."""


def bundle_path() -> str:
    path = os.environ.get(BUNDLE_ENV)
    if not path:
        raise FileNotFoundError(
            f"{BUNDLE_ENV} is not set: point it at a bundle directory written by `searchsage export` "
            f"(with query/ and pin/) before `feast materialize` or live embedding"
        )
    return path


@lru_cache(maxsize=8)
def _load(path: str, kind: str, variant: str, threads: int) -> Any:
    from encoders.runtime import BundleEncoder

    return BundleEncoder(path, variant=variant, threads=threads, kind=kind)


@lru_cache(maxsize=8)
def _load_with_feedback(path: str, variant: str, threads: int, pins: str, k: int, weight: float) -> Any:
    from encoders.runtime.feedback import PinFeedbackEncoder, load_pin_feedback

    try:
        index = load_pin_feedback(pins, k, weight)
    except ValueError as exc:
        raise ValueError(f"{PIN_FEEDBACK_ENV}={pins}: {exc}") from None
    return PinFeedbackEncoder(_load(path, "query", variant, threads), index)


def get_encoder(kind: str) -> Any:
    """The process-wide encoder for tower ``kind`` ('query'|'pin'), loaded on first use: the bundle's
    ``BundleEncoder``, wrapped in a ``PinFeedbackEncoder`` for queries when ``$SEARCHSAGE_PIN_FEEDBACK`` is set."""
    variant = os.environ.get(VARIANT_ENV, "fp32")
    threads = int(os.environ.get(THREADS_ENV, "2"))
    path = os.path.abspath(bundle_path())
    pins = os.environ.get(PIN_FEEDBACK_ENV)
    if kind != "query" or not pins:
        return _load(path, kind, variant, threads)
    try:
        from encoders.model.pin_feedback import PinFeedback

        k = int(os.environ.get(PRF_K_ENV, PinFeedback.k))
        weight = float(os.environ.get(PRF_WEIGHT_ENV, PinFeedback.weight))
    except ValueError:
        raise ValueError(f"{PRF_K_ENV} must be an integer and {PRF_WEIGHT_ENV} a number, got "
                         f"{os.environ.get(PRF_K_ENV)!r} and {os.environ.get(PRF_WEIGHT_ENV)!r}") from None
    return _load_with_feedback(path, variant, threads, os.path.abspath(pins), k, weight)


def bundle_dim(kind: str) -> int | None:
    """D of the bundle tower ``kind`` from its manifest (no model load); None if no bundle is set."""
    if not os.environ.get(BUNDLE_ENV):
        return None
    from encoders.runtime import BundleManifest, resolve_tower_dir

    return int(BundleManifest.read(resolve_tower_dir(bundle_path(), kind)).dim)


def declared_dim(view: Any) -> int | None:
    """The ``vector_length`` declared on a view's ``embedding`` field (None if not declared)."""
    for f in getattr(view, "features", []) or []:
        if f.name == "embedding" and getattr(f, "vector_length", 0):
            return int(f.vector_length)
    return None


def check_dim(view_name: str, declared: int | None, kind: str, actual: int) -> None:
    if declared is not None and declared != actual:
        raise BundleDimMismatch(
            f"bundle {os.environ.get(BUNDLE_ENV)} ({kind} tower) makes {actual}-d embeddings but feature view "
            f"{view_name!r} declares embedding vector_length={declared}; export a matching bundle or set "
            f"SEARCHSAGE_EMBEDDING_DIM={actual} and run `feast apply` again"
        )


def check_views_against_bundle(views: Iterable[Any]) -> None:
    """At ``feast apply``: refuse when the configured bundle's D differs from a view's vector length."""
    for view in views:
        kind = (getattr(view, "tags", None) or {}).get(TOWER_TAG)
        if not kind:
            continue
        actual = bundle_dim(kind)
        if actual is not None:
            check_dim(view.name, declared_dim(view), kind, actual)


def encode_column(texts: list[str], kind: str, declared: int | None, view_name: str) -> np.ndarray:
    """Encode ``texts`` with the ``kind`` tower in chunks (tqdm progress); returns (N, D) float32."""
    from tqdm.auto import tqdm

    enc = get_encoder(kind)
    check_dim(view_name, declared, kind, enc.dim)
    out = np.empty((len(texts), enc.dim), dtype=np.float32)
    steps = range(0, len(texts), CHUNK_ROWS)
    for start in tqdm(steps, desc=f"encode {view_name}", unit="chunk", disable=len(texts) <= CHUNK_ROWS):
        out[start : start + CHUNK_ROWS] = enc.encode(texts[start : start + CHUNK_ROWS])
    return out


def _embed_frame(df: pd.DataFrame, key: str, text_col: str, kind: str, view_name: str, dim_env: str) -> pd.DataFrame:
    out = df.copy()
    if len(out) == 0:
        out["embedding"] = pd.Series([], dtype=object)
        out["model_version"] = pd.Series([], dtype=object)
        return out
    texts = out[text_col].astype(str).tolist()
    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    declared = int(os.environ[dim_env]) if os.environ.get(dim_env) else None
    emb = encode_column(list(uniq), kind, declared, view_name)[inverse]
    out["embedding"] = list(emb)
    out["model_version"] = get_encoder(kind).model_version
    return out


def embed_queries(df: pd.DataFrame) -> pd.DataFrame:
    """Batch UDF of ``query_embedding``: raw ``query`` -> normalised key + embedding + model_version."""
    from encoders.normalize import normalize_queries

    df = df.copy()
    df["query"] = normalize_queries(df["query"].astype(str))
    return _embed_frame(df, "query", "query", "query", "query_embedding", "SEARCHSAGE_EMBEDDING_DIM")


def embed_pins(df: pd.DataFrame) -> pd.DataFrame:
    """Batch UDF of ``pin_embedding``: ``pin_id`` + ``text`` -> embedding (pin tower) + model_version."""
    return _embed_frame(df, "pin_id", "text", "pin", "pin_embedding", "SEARCHSAGE_EMBEDDING_DIM")


def live_query_embedding(inputs: pd.DataFrame) -> pd.DataFrame:
    """On-demand transform: the stored embedding when the query was materialised, else encode live.

    ``inputs`` holds the request column ``query_text`` and the stored ``embedding`` /
    ``model_version`` of ``query_embedding`` (null when the key was never materialised).
    Returns ``query_vector`` (Array(Float32)), ``query_vector_source`` ('store'|'live') and
    ``query_vector_model_version``.
    """
    n = len(inputs)
    stored = inputs["embedding"] if "embedding" in inputs else pd.Series([None] * n)
    stored_mv = inputs["model_version"] if "model_version" in inputs else pd.Series([None] * n)
    have = np.array([v is not None and not (np.isscalar(v) and pd.isna(v)) and len(v) > 0 for v in stored])
    vectors: list[Any] = [None] * n
    source = np.where(have, "store", "live").tolist()
    versions: list[Any] = [None] * n
    for i in np.flatnonzero(have):
        vectors[i] = np.asarray(stored.iloc[i], dtype=np.float32)
        versions[i] = stored_mv.iloc[i]
    missing = np.flatnonzero(~have)
    if len(missing):
        enc = get_encoder("query")
        texts = inputs["query_text"].astype(str).iloc[missing].tolist()
        live = enc.encode(texts)
        for j, i in enumerate(missing):
            vectors[i] = live[j]
            versions[i] = enc.model_version
    return pd.DataFrame(
        {"query_vector": vectors, "query_vector_source": source, "query_vector_model_version": versions}
    )


