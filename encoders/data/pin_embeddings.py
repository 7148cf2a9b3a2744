"""The frozen pin tower stand-in: pin text → pretrained base model → mean pooling → L2 norm.

:func:`embed_pins` writes the embeddings into ``pins.parquet:embedding`` (``list<float32>``, every
row of length D) and records how they were made in ``pin_tower.json`` beside it::

    {"source": "computed", "base_model": ".../model", "model_fingerprint": "<sha256 of config.json>",
     "pooling": "mean", "normalize": true, "max_length": 64, "dim": 384, "n_pins": 54667,
     "text_hash": "<sha256 of pin_id/text pairs>", "seconds": 301.2, "runtime": "onnx-fp32",
     "onnx": {"model_version": "pin-…", "directory": "…", "fp32_max_abs_diff": 2.2e-07, …}}

Runtimes (``runtime=``, ``--runtime``): ``onnx-fp32`` (default) and ``onnx-int8`` export that same
zero-shot model once to a cached ONNX pin tower (:mod:`encoders.export.pin_cache`) and encode with
onnxruntime in length-sorted, token-capped calls; ``torch`` runs the transformers model eagerly.
torch and onnx-fp32 give the same vectors (max |Δ| ≤ the export's ``fp32_max_abs`` gate); int8
vectors differ slightly (cosine ≈ 0.997 to fp32) and are admitted only when int8 passes its gate,
on the export's check set *and* on a sample of the pins being embedded.

A second call with the same texts and model is a cache hit and computes nothing (torch and
onnx-fp32 embeddings stand for each other; int8 ones only for int8). Users who bring
their own pin embeddings (any D) put them in the ``embedding`` column themselves; with no
``pin_tower.json`` present, :func:`embed_pins` records them as ``"source": "user"`` and never
overwrites them unless ``force=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from encoders.data.schema import PINS, DatasetPaths, read_table, write_table
from encoders.export.config import PIN_MAX_LENGTH, ParityThresholds
from encoders.runtime.bundle import DEFAULT_MAX_TOKENS

PIN_TOWER_FILE = "pin_tower.json"
#: Default ONNX cache directory inside the dataset directory (``--onnx-cache``).
ONNX_CACHE_DIR = "pin_tower_onnx"
Runtime = Literal["onnx-fp32", "onnx-int8", "torch"]
RUNTIMES: tuple[str, ...] = get_args(Runtime)


class PinEmbedError(ValueError):
    """The chosen runtime cannot give admissible pin embeddings (e.g. int8 fails its parity gate)."""


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(f"expected a positive integer, got {value}")
    return value


@dataclass
class PinEmbedOptions:
    """Options of :func:`embed_pins` / ``searchsage pins embed``, declared once (flags are generated)."""

    base_model: str | None = field(default=None, metadata={
        "metavar": "DIR", "help": "local transformers directory (default: the packaged all-MiniLM-L6-v2)"})
    runtime: Runtime = field(default="onnx-fp32", metadata={
        "help": "onnx-fp32 (default): the base model exported once to a cached ONNX graph, same vectors as torch "
        "within the export's fp32 gate, faster; onnx-int8: faster still, vectors at cosine ~0.997 to fp32, refused "
        "when int8 fails its gate on these pins; torch: transformers eager (the reference)"})
    threads: int | None = field(default=None, metadata={
        "type": _positive, "metavar": "N", "help": "torch / onnxruntime threads (default: all cores)"})
    batch_size: int = field(default=128, metadata={
        "type": _positive, "metavar": "N", "help": "texts per batch (onnx: rows per call, at most --max-tokens padded tokens) "
        "(default {default})"})
    max_tokens: int = field(default=DEFAULT_MAX_TOKENS, metadata={
        "type": _positive, "metavar": "N", "help": "onnx runtimes: padded tokens per onnxruntime call (default {default})"})
    max_length: int = field(default=PIN_MAX_LENGTH, metadata={
        "type": _positive, "metavar": "N", "help": "max tokens per pin text (default {default})"})
    onnx_cache: str | None = field(default=None, metadata={
        "metavar": "DIR", "help": "where the exported ONNX pin tower is cached, one subdirectory per model "
        f"(default: DATASET/{ONNX_CACHE_DIR}; a .gitignore there keeps the weights out of git)"})
    force: bool = field(default=False, metadata={"help": "recompute even when cached"})
    progress: bool = field(default=True, metadata={"help": "show progress bars (default on)"})

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")
        for name in ("batch_size", "max_tokens", "max_length", "threads"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")


@dataclass
class PinTowerInfo:
    """How the ``embedding`` column of ``pins.parquet`` was made (the content of ``pin_tower.json``)."""

    source: str  # "computed" or "user"
    base_model: str | None
    model_fingerprint: str | None
    pooling: str | None
    normalize: bool | None
    max_length: int | None
    dim: int
    n_pins: int
    text_hash: str
    seconds: float | None = None
    runtime: str | None = None  # None: written before runtimes existed, i.e. torch
    onnx: dict[str, Any] | None = None  # the ONNX pin tower used: version, directory, parity figures

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def read(cls, dataset_dir: str | Path) -> PinTowerInfo | None:
        """Read ``pin_tower.json`` of a dataset directory (``None`` when absent or unreadable)."""
        p = Path(dataset_dir) / PIN_TOWER_FILE
        if not p.exists():
            return None
        try:
            return cls(**json.loads(p.read_text()))
        except (ValueError, TypeError):
            return None


def text_hash(pin_ids: list[str], texts: list[str]) -> str:
    """sha256 over the ordered ``(pin_id, text)`` pairs — changes when any id, text or the order changes."""
    h = hashlib.sha256()
    for pid, text in zip(pin_ids, texts, strict=True):
        h.update(pid.encode("utf-8"))
        h.update(b"\x1f")
        h.update(text.encode("utf-8"))
        h.update(b"\x1e")
    return h.hexdigest()


def model_fingerprint(model_dir: str | Path) -> str:
    """sha256 of the model's ``config.json`` plus the sizes of its weight files (cheap, no weight read)."""
    d = Path(model_dir)
    h = hashlib.sha256((d / "config.json").read_bytes())
    for f in sorted(d.glob("*.safetensors")) + sorted(d.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return h.hexdigest()


def embed_texts(
    model: object,
    tokenizer: object,
    texts: list[str],
    batch_size: int = 128,
    max_length: int = 64,
    progress: bool = True,
) -> np.ndarray:
    """Mean-pooled, L2-normalised embeddings of ``texts`` → ``(N, H)`` float32, in input order.

    Texts are sorted by token length so each batch pads little, then put back in order.
    ``model`` is a transformers ``AutoModel`` (``last_hidden_state (N, L, H)``).
    """
    import torch
    from tqdm.auto import tqdm

    from encoders.model.tower import pool

    hidden = int(model.config.hidden_size)  # type: ignore[attr-defined]
    if not texts:
        return np.zeros((0, hidden), dtype=np.float32)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = np.argsort(-np.asarray(lengths), kind="stable")
    out = np.empty((len(texts), hidden), dtype=np.float32)
    model.eval()  # type: ignore[attr-defined]
    with torch.inference_mode(), tqdm(total=len(texts), disable=not progress, desc="embed pins", unit="pin") as bar:
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            states = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            z = torch.nn.functional.normalize(pool(states, batch["attention_mask"], "mean").float(), dim=-1)
            out[idx] = z.numpy()
            bar.update(len(idx))
    return out


def _write_pins_with_embedding(paths: DatasetPaths, pins: pa.Table, emb: np.ndarray) -> None:
    """Replace the ``embedding`` column and write ``pins.parquet`` atomically (tmp file + rename)."""
    flat = pa.array(emb.reshape(-1), pa.float32())
    col = pa.FixedSizeListArray.from_arrays(flat, emb.shape[1]).cast(pa.list_(pa.float32()))
    base = pins.drop_columns(["embedding"]) if "embedding" in pins.column_names else pins
    tmp = paths.pins.with_suffix(".parquet.tmp")
    write_table(base.append_column("embedding", col), tmp, PINS)
    os.replace(tmp, paths.pins)


def write_pins(paths: DatasetPaths, pins: pa.Table) -> Path:
    """Write ``pins`` (``pin_id``, ``text``) as ``pins.parquet`` for an importer/generator.

    When the existing file holds embeddings of exactly these ids and texts (re-importing or
    regenerating the same catalogue), it is kept with its embeddings and ``pin_tower.json``;
    otherwise it is replaced and a stale ``pin_tower.json`` is removed.
    """
    if paths.pins.exists():
        try:
            old = pq.read_table(paths.pins)
        except (pa.ArrowInvalid, OSError):
            old = None
        if old is not None and "embedding" in old.column_names and (
            old.select(["pin_id", "text"]).cast(pins.schema).equals(pins)
        ):
            return paths.pins
    (paths.root / PIN_TOWER_FILE).unlink(missing_ok=True)
    write_table(pins, paths.pins, PINS)
    return paths.pins


_D = PinEmbedOptions


def same_vectors(recorded: str | None, requested: str) -> bool:
    """Whether embeddings made with runtime ``recorded`` (None = torch) stand for ``requested`` ones:
    torch and onnx-fp32 agree to the export's fp32 gate, int8 vectors are only int8."""
    return ((recorded or "torch") == "onnx-int8") == (requested == "onnx-int8")


def embed_pins(
    dataset_dir: str | Path,
    base_model: str | Path | None = None,
    batch_size: int = _D.batch_size,
    max_length: int = _D.max_length,
    force: bool = False,
    threads: int | None = None,
    progress: bool = True,
    *,
    runtime: str = _D.runtime,
    max_tokens: int = _D.max_tokens,
    onnx_cache: str | Path | None = None,
    thresholds: ParityThresholds | None = None,
) -> Path:
    """Compute (or reuse) the frozen pin embeddings of a dataset directory; returns ``pins.parquet``.

    * embeddings present and ``pin_tower.json`` matches texts + model + max_length (+ int8 or not) → cached;
    * embeddings present but no ``pin_tower.json`` → the user's own embeddings, recorded, never touched;
    * otherwise (or ``force``) → computed with ``base_model`` (default: the packaged MiniLM) on ``runtime``.

    ``threads``: torch / onnxruntime threads (default: all cores; torch's setting is restored
    afterwards). ``onnx_cache``: where onnx runtimes keep the exported pin tower (default
    ``DIR/pin_tower_onnx``). ``thresholds``: the parity gates (default :class:`ParityThresholds`).
    Raises :class:`PinEmbedError` when the runtime's gate fails (nothing is written then).
    """
    from encoders.model.base_model import resolve_base_model

    PinEmbedOptions(runtime=runtime, threads=threads, batch_size=batch_size, max_tokens=max_tokens,  # type: ignore[arg-type]
                    max_length=max_length)  # validates
    paths = DatasetPaths(Path(dataset_dir))
    pins = read_table(paths.pins, PINS)
    ids = pins.column("pin_id").to_pylist()
    texts = pins.column("text").to_pylist()
    digest = text_hash(ids, texts)
    info = PinTowerInfo.read(paths.root)
    has_emb = "embedding" in pins.column_names
    dim = len(pins.column("embedding")[0]) if has_emb and pins.num_rows else 0

    if has_emb and not force and (info is None or info.source == "user"):
        if info is None:
            user = PinTowerInfo("user", None, None, None, None, None, dim, pins.num_rows, digest)
            (paths.root / PIN_TOWER_FILE).write_text(user.to_json())
        print(f"pins: using the provided embeddings in {paths.pins} (D={dim}); nothing computed")
        return paths.pins
    model_dir = resolve_base_model(base_model)
    fingerprint = model_fingerprint(model_dir)
    if has_emb and not force and info is not None and (
        info.text_hash == digest and info.model_fingerprint == fingerprint
        and info.base_model == str(model_dir) and info.max_length == max_length and info.dim == dim
        and same_vectors(info.runtime, runtime)
    ):
        print(f"pins: embeddings cached in {paths.pins} (D={dim}, {pins.num_rows} pins, model {model_dir}, "
              f"{info.runtime or 'torch'}); use --force to recompute")
        return paths.pins

    n_threads = threads or os.cpu_count() or 1
    onnx: dict[str, Any] | None = None
    if runtime == "torch":
        emb, seconds = _embed_torch(model_dir, texts, batch_size, max_length, n_threads, progress)
    else:
        from encoders.export.parity import ParityError
        from encoders.export.pin_cache import embed_onnx
        from encoders.runtime.manifest import BundleError

        cache = Path(onnx_cache) if onnx_cache is not None else paths.root / ONNX_CACHE_DIR
        try:
            emb, seconds, onnx = embed_onnx(
                model_dir, texts, runtime.removeprefix("onnx-"), cache, max_length=max_length, threads=n_threads,
                batch_size=batch_size, max_tokens=max_tokens, thresholds=thresholds or ParityThresholds(),
                progress=progress)
        except (ParityError, BundleError) as exc:  # a failed gate, or an unusable cached export
            raise PinEmbedError(str(exc)) from None
    _write_pins_with_embedding(paths, pins, emb)
    info = PinTowerInfo(
        "computed", str(model_dir), fingerprint, "mean", True, max_length, int(emb.shape[1]), len(texts), digest,
        round(seconds, 3), runtime, onnx,
    )
    (paths.root / PIN_TOWER_FILE).write_text(info.to_json())
    rate = len(texts) / seconds if seconds > 0 else float("inf")
    print(f"pins: embedded {len(texts)} pins in {seconds:.1f} s ({rate:.0f} pins/s, {runtime}, {n_threads} thread{'s' if n_threads != 1 else ''}, "
          f"D={emb.shape[1]}) → {paths.pins}")
    return paths.pins


def _embed_torch(model_dir: Path, texts: list[str], batch_size: int, max_length: int, threads: int,
                 progress: bool) -> tuple[np.ndarray, float]:
    """The transformers reference: ``(embeddings, seconds spent encoding)``."""
    import torch
    from transformers import AutoModel

    from encoders.export.pin_cache import transformers_progress
    from encoders.model.tower import load_tokenizer

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with transformers_progress(progress):
            model = AutoModel.from_pretrained(str(model_dir))
        tokenizer = load_tokenizer(model_dir)
        t0 = time.perf_counter()
        emb = embed_texts(model, tokenizer, texts, batch_size=batch_size, max_length=max_length, progress=progress)
        return emb, time.perf_counter() - t0
    finally:
        torch.set_num_threads(previous)


def read_pin_embeddings(dataset_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """``(pin_ids, (N, D) float32)`` from ``pins.parquet`` (a clear error when not embedded yet)."""
    from encoders.data.schema import pin_embedding_matrix

    paths = DatasetPaths(Path(dataset_dir))
    pins = read_table(paths.pins, PINS)
    return pins.column("pin_id").to_pylist(), pin_embedding_matrix(pins)
