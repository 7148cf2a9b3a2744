"""The encoder inside Feast: batch UDFs for materialisation and the on-demand (live) transform.

The functions live in this importable module, not in ``feature_repo/``, so Feast's registry
(which pickles UDFs with dill) stores them *by reference* and any process — the ``feast`` CLI,
a Ray worker, a ranker — re-imports them and gets the same code.

Which bundle: ``$SEARCHSAGE_BUNDLE`` (a ``searchsage export`` directory with ``query/`` and
``pin/``), variant ``$SEARCHSAGE_BUNDLE_VARIANT`` (default ``fp32``: int8 output depends on batch
composition, so a live embedding would not match the materialised one). Each tower is loaded
once per process (:func:`get_encoder`) and reused for every batch.

Frozen item vectors: pins whose source row carries an ``embedding`` (``searchsage feast ingest``
keeps the user's column) are materialised with exactly those vectors (as float32, bit for bit);
the pin tower only embeds pins without one. A length other than the view's is refused by name.

Paths: relative ``$SEARCHSAGE_BUNDLE`` / ``$SEARCHSAGE_PIN_FEEDBACK`` are taken from the directory
the user ran the command in (:func:`invoking_dir`), also inside ``feast -c REPO apply``, which
changes directory into the repository before it imports it.

Pin-space feedback (:mod:`encoders.runtime.pin_feedback`): with ``$SEARCHSAGE_PIN_FEEDBACK`` set to a
dataset's ``pins.parquet``, the query tower's embeddings — materialised and live alike — are refined
towards the mean of their top ``$SEARCHSAGE_PRF_K`` (default 5) pins with weight
``$SEARCHSAGE_PRF_WEIGHT`` (default 0.1), and ``model_version`` carries the feedback's tag, exactly as
``searchsage encode/serve --pin-feedback`` do.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from encoders.featurestore.contract import (
    DIM_ENV,
    PIN_VIEW,
    QUERY_VIEW,
    TOWER_TAG,
    USER_BUNDLE_ENV,
    declared_dim,
    env_dim,
)

BUNDLE_ENV = "SEARCHSAGE_BUNDLE"
VARIANT_ENV = "SEARCHSAGE_BUNDLE_VARIANT"
THREADS_ENV = "SEARCHSAGE_ENCODER_THREADS"
PIN_FEEDBACK_ENV = "SEARCHSAGE_PIN_FEEDBACK"
PRF_K_ENV = "SEARCHSAGE_PRF_K"
PRF_WEIGHT_ENV = "SEARCHSAGE_PRF_WEIGHT"
#: ``model_version`` of a pin vector that came with the pin (no ``model_version`` column in the source).
PROVIDED_VERSION = "provided"
#: Rows encoded per progress step inside a materialisation batch.
CHUNK_ROWS = 4096


class BundleDimMismatch(ValueError):
    """The bundle's D differs from the feature view's declared ``embedding`` vector length."""


class PinVectorMismatch(ValueError):
    """Pins brought their own ``embedding`` of a length other than the view's declared one."""


def is_feast_cli(argv: list[str] | None = None) -> bool:
    """True when this process is the ``feast`` CLI (``feast ...`` or ``python -m feast ...``)."""
    argv = sys.argv if argv is None else argv
    return bool(argv) and (Path(argv[0]).name == "feast" or Path(argv[0]).parent.name == "feast")


def _feast_chdir_arg(argv: list[str] | None = None) -> str | None:
    """The ``-c/--chdir`` argument when this process is the ``feast`` CLI (None otherwise)."""
    argv = sys.argv if argv is None else argv
    if not is_feast_cli(argv):
        return None
    for i, a in enumerate(argv[1:], 1):
        if a in ("-c", "--chdir") and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--chdir="):
            return a.split("=", 1)[1]
        if a.startswith("-c") and len(a) > 2:
            return a[2:]
    return None


def invoking_dir(argv: list[str] | None = None) -> Path:
    """The directory the user started the command from.

    ``feast -c REPO apply`` (and ``plan``) change directory into REPO before they import the
    repository, so the current directory is REPO there; every other command keeps the user's. We
    recognise that case from the CLI's own ``-c`` argument and take ``$PWD`` (kept by the shell,
    untouched by ``os.chdir``) when ``$PWD/REPO`` is where we stand, else strip REPO's parts off
    the current directory.
    """
    cwd = Path.cwd().resolve()
    arg = _feast_chdir_arg(argv)
    if arg is None:
        return cwd
    target = (cwd / arg).resolve()
    if target == cwd or (target / "feature_store.yaml").is_file() or not (cwd / "feature_store.yaml").is_file():
        return cwd  # feast has not changed directory (materialize, serve, ...)
    pwd = os.environ.get("PWD")
    if pwd and os.path.isdir(pwd) and (Path(pwd) / arg).resolve() == cwd:
        return Path(pwd).resolve()
    rel = Path(arg)
    if not rel.is_absolute() and ".." not in rel.parts:
        base = cwd
        for part in rel.parts:
            if part != ".":
                base = base.parent
        if (base / rel).resolve() == cwd:
            return base
    return cwd


def resolve_user_path(value: str | os.PathLike[str], argv: list[str] | None = None) -> Path:
    """``value`` as an absolute path; a relative one is taken from :func:`invoking_dir`."""
    path = Path(os.path.expanduser(os.fspath(value)))
    return path if path.is_absolute() else invoking_dir(argv) / path


def env_path(name: str) -> Path | None:
    """The absolute path in environment variable ``name`` (None when unset or empty)."""
    value = os.environ.get(name)
    return resolve_user_path(value) if value else None


def bundle_path() -> str:
    """Absolute bundle directory from ``$SEARCHSAGE_BUNDLE`` (relative = from where you stand)."""
    path = env_path(BUNDLE_ENV)
    if path is None:
        raise FileNotFoundError(
            f"{BUNDLE_ENV} is not set: point it at a bundle directory written by `searchsage export` "
            f"(with query/ and pin/) before `feast materialize` or live embedding"
        )
    if not path.is_dir():
        raise FileNotFoundError(
            f"{BUNDLE_ENV}={os.environ[BUNDLE_ENV]}: no such directory ({path}); point it at the output of "
            "`searchsage export` (relative paths are taken from the directory you run the command in)"
        )
    return str(path)


@lru_cache(maxsize=8)
def _load(path: str, kind: str, variant: str, threads: int) -> Any:
    from encoders.runtime import BundleEncoder

    return BundleEncoder(path, variant=variant, threads=threads, kind=kind)


@lru_cache(maxsize=8)
def _load_with_feedback(path: str, variant: str, threads: int, pins: str, k: int, weight: float) -> Any:
    from encoders.runtime.pin_feedback import PinFeedbackEncoder, load_pin_feedback

    try:
        index = load_pin_feedback(pins, k, weight)
    except ValueError as exc:
        raise ValueError(f"{PIN_FEEDBACK_ENV}={pins}: {exc}") from None
    return PinFeedbackEncoder(_load(path, "query", variant, threads), index)


def get_encoder(kind: str) -> Any:
    """The process-wide encoder for tower ``kind`` ('query'|'pin'), loaded on first use: the bundle's
    ``BundleEncoder``, wrapped in a ``PinFeedbackEncoder`` for queries when ``$SEARCHSAGE_PIN_FEEDBACK`` is set."""
    variant = os.environ.get(VARIANT_ENV, "fp32")
    threads = int(os.environ.get(THREADS_ENV) or 2)
    path = bundle_path()
    pins = env_path(PIN_FEEDBACK_ENV)
    if kind != "query" or pins is None:
        return _load(path, kind, variant, threads)
    try:
        from encoders.runtime.pin_feedback import PinFeedback

        k = int(os.environ.get(PRF_K_ENV, PinFeedback.k))
        weight = float(os.environ.get(PRF_WEIGHT_ENV, PinFeedback.weight))
    except ValueError:
        raise ValueError(f"{PRF_K_ENV} must be an integer and {PRF_WEIGHT_ENV} a number, got "
                         f"{os.environ.get(PRF_K_ENV)!r} and {os.environ.get(PRF_WEIGHT_ENV)!r}") from None
    return _load_with_feedback(path, variant, threads, str(pins), k, weight)


def bundle_dim(kind: str) -> int | None:
    """D of the bundle tower ``kind`` from its manifest (no model load); None if no bundle is set.
    ``kind="user"``: the homefeed user bundle of ``$SEARCHSAGE_USER_BUNDLE`` (:mod:`.user_udfs`)."""
    if kind == "user":
        from encoders.featurestore.user_udfs import user_bundle_dim

        return user_bundle_dim()
    if not os.environ.get(BUNDLE_ENV):
        return None
    from encoders.runtime import BundleManifest, resolve_tower_dir

    return int(BundleManifest.read(resolve_tower_dir(bundle_path(), kind)).dim)


def check_dim(view_name: str, declared: int | None, kind: str, actual: int) -> None:
    if declared is not None and declared != actual:
        bundle = env_path(USER_BUNDLE_ENV if kind == "user" else BUNDLE_ENV)
        raise BundleDimMismatch(
            f"bundle {bundle} ({kind} tower) makes {actual}-d embeddings but feature view "
            f"{view_name!r} declares embedding vector_length={declared}; export a matching bundle or set "
            f"{DIM_ENV}={actual} and run `feast apply` again"
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


def expected_dim() -> int | None:
    """The vector length materialisation must produce: ``$SEARCHSAGE_EMBEDDING_DIM`` if set, else the
    bundle's D (what ``feature_repo/definitions.py`` declares then), else None (not known here)."""
    declared = env_dim()
    if declared is not None:
        return declared
    return bundle_dim("pin") if os.environ.get(BUNDLE_ENV) else None


def _embed_frame(df: pd.DataFrame, text_col: str, kind: str, view_name: str) -> pd.DataFrame:
    out = df.copy()
    if len(out) == 0:
        out["embedding"] = pd.Series([], dtype=object)
        out["model_version"] = pd.Series([], dtype=object)
        return out
    texts = out[text_col].astype(str).tolist()
    uniq, inverse = np.unique(np.asarray(texts, dtype=object), return_inverse=True)
    emb = encode_column(list(uniq), kind, expected_dim(), view_name)[inverse]
    out["embedding"] = list(emb)
    out["model_version"] = get_encoder(kind).model_version
    return out


def embed_queries(df: pd.DataFrame) -> pd.DataFrame:
    """Batch UDF of ``query_embedding``: raw ``query`` -> normalised key + embedding + model_version."""
    from encoders.normalize import normalize_queries

    df = df.copy()
    df["query"] = normalize_queries(df["query"].astype(str))
    return _embed_frame(df, "query", "query", QUERY_VIEW)


def _has_vector(v: Any) -> bool:
    return v is not None and not (np.isscalar(v) and pd.isna(v)) and len(v) > 0


def provided_vectors(df: pd.DataFrame, declared: int | None, view_name: str = PIN_VIEW) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``df`` that bring their own ``embedding``: ``(mask (N,) bool, (M, D) float32)``.

    Refuses (:class:`PinVectorMismatch`) ragged or non-finite vectors and a length other than ``declared``.
    """
    if "embedding" not in df.columns:
        return np.zeros(len(df), dtype=bool), np.zeros((0, declared or 0), dtype=np.float32)
    col = df["embedding"].tolist()
    mask = np.fromiter((_has_vector(v) for v in col), dtype=bool, count=len(col))
    rows = [np.asarray(v, dtype=np.float32) for v, m in zip(col, mask, strict=True) if m]
    if not rows:
        return mask, np.zeros((0, declared or 0), dtype=np.float32)
    widths = {r.shape[0] for r in rows}
    keys = df["pin_id"].astype(str).to_numpy()[mask] if "pin_id" in df.columns else np.arange(len(rows)).astype(str)
    width = rows[0].shape[0]
    if len(widths) > 1 or (declared is not None and width != declared):
        bad = next(i for i, r in enumerate(rows) if r.shape[0] != (declared if declared is not None else width))
        want = declared if declared is not None else width
        raise PinVectorMismatch(
            f"{view_name}: pin {keys[bad]!r} brings a {rows[bad].shape[0]}-d embedding but the feature view declares "
            f"vector_length={want} ({DIM_ENV} / the bundle's D); re-ingest vectors of length {want} "
            f"(`searchsage feast ingest`) or set {DIM_ENV} to your vectors' length, with a bundle of that D"
        )
    matrix = np.stack(rows)
    finite = np.isfinite(matrix).all(axis=1)
    if not finite.all():
        raise PinVectorMismatch(f"{view_name}: pin {keys[int(np.argmin(finite))]!r} has a non-finite embedding value")
    return mask, matrix


def embed_pin_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Batch UDF of ``pin_embedding``: the pin's own frozen ``embedding`` when the source has one
    (bit for bit, as float32; ``model_version`` from the source's column, else ``provided``), else
    the bundle's pin tower on ``text``."""
    out = df.copy()
    declared = expected_dim()
    mask, given = provided_vectors(out, declared)
    if not mask.any():
        return _embed_frame(out.drop(columns=["embedding"], errors="ignore"), "text", "pin", PIN_VIEW)
    vectors: list[Any] = [None] * len(out)
    versions: list[Any] = [None] * len(out)
    own_mv = out["model_version"].tolist() if "model_version" in out.columns else [None] * len(out)
    for j, i in enumerate(np.flatnonzero(mask)):
        vectors[i] = given[j]
        versions[i] = own_mv[i] if isinstance(own_mv[i], str) and own_mv[i] else PROVIDED_VERSION
    rest = np.flatnonzero(~mask)
    if len(rest):
        sub = _embed_frame(out.iloc[rest].drop(columns=["embedding"]), "text", "pin", PIN_VIEW)
        for j, i in enumerate(rest):
            vectors[i] = sub["embedding"].iloc[j]
            versions[i] = sub["model_version"].iloc[j]
    out["embedding"] = vectors
    out["model_version"] = versions
    return out


def live_query_embedding(inputs: pd.DataFrame) -> pd.DataFrame:
    """On-demand transform: the stored embedding when it was made by the live encoder, else encode live.

    ``inputs`` holds the request column ``query_text`` and the stored ``embedding`` /
    ``model_version`` of ``query_embedding`` (null when the key was never materialised).
    A stored vector is served only if its ``model_version`` is compatible with the live encoder's
    (:func:`encoders.runtime.model_version.is_compatible`: bundle, variant and
    ``$SEARCHSAGE_PIN_FEEDBACK`` settings all equal — the rule ``searchsage serve`` applies); a row
    of another version (or without one) is stale and is encoded live like a missing one.
    Returns ``query_vector`` (Array(Float32)), ``query_vector_source`` ('store'|'live') and
    ``query_vector_model_version``. With ``$SEARCHSAGE_BUNDLE`` set, the live encoder is loaded on the
    first call (once per process), also when every row is stored: its version is what the rows are
    checked against. Without a bundle, stored rows are served as they are.
    """
    from encoders.runtime.model_version import ModelVersion

    n = len(inputs)
    stored = inputs["embedding"] if "embedding" in inputs else pd.Series([None] * n)
    stored_mv = inputs["model_version"] if "model_version" in inputs else pd.Series([None] * n)
    # No bundle configured: there is no live encoder to check against, so stored rows are served as
    # they are (a repository of provided vectors); a missing row still needs the encoder (clear error).
    enc = get_encoder("query") if os.environ.get(BUNDLE_ENV) else None
    live_version = ModelVersion.parse(enc.model_version) if enc is not None else None
    have = np.array([_has_vector(v) and (live_version is None or live_version.serves(mv if isinstance(mv, str) else None))
                     for v, mv in zip(stored, stored_mv, strict=True)], dtype=bool)
    vectors: list[Any] = [None] * n
    source = np.where(have, "store", "live").tolist()
    versions: list[Any] = [None] * n
    for i in np.flatnonzero(have):
        vectors[i] = np.asarray(stored.iloc[i], dtype=np.float32)
        versions[i] = stored_mv.iloc[i]
    missing = np.flatnonzero(~have)
    if len(missing):
        enc = enc if enc is not None else get_encoder("query")
        texts = inputs["query_text"].astype(str).iloc[missing].tolist()
        live = enc.encode(texts)
        for j, i in enumerate(missing):
            vectors[i] = live[j]
            versions[i] = enc.model_version
    return pd.DataFrame(
        {"query_vector": vectors, "query_vector_source": source, "query_vector_model_version": versions}
    )


