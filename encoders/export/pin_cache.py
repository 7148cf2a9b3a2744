"""The frozen pin tower as a cached ONNX export, for ``searchsage pins embed --runtime onnx-*``.

``pins embed`` embeds pin texts with the *base model* (zero-shot: masked mean pooling, L2 norm,
``max_length`` tokens), not with a trained tower. :func:`pin_tower_onnx` exports exactly that model
once, with the bundle export path (:func:`encoders.export.bundle.export_tower` on
:func:`~encoders.export.onnx_export.build_pin_tower`: fp32 graph, BERT fusions, per-token int8,
parity against torch), into a cache directory, and reuses it on later calls without importing torch::

    CACHE/.gitignore                    # "*": exported weights are never committed by accident
    CACHE/pin-L64-<16 hex>/             # a standard pin tower directory (BundleEncoder reads it)
        model.onnx  model.int8.onnx  tokenizer.json  manifest.json

The key hashes the base model's files (config, tokenizer, weights: their bytes, not their paths),
``max_length`` and the export recipe (opset, fusion, int8 recipe), so another model, a fine-tuned copy with the same config, or
another recipe gets its own directory. Parity is measured at export on the fixed check set plus a
sample of the pins being embedded; each variant is then admitted on its own gate
(:func:`variant_violations`): fp32 on the tokenizer and max |onnx − torch|, int8 on those and its
cosine to fp32. :func:`sample_agreement` re-checks int8 against fp32 on the caller's own texts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from encoders.export.config import ExportOptions, ParityThresholds
from encoders.export.parity import ParityError, ParityReport, row_cosine, violations
from encoders.runtime.bundle import BundleEncoder
from encoders.runtime.manifest import MANIFEST_NAME, BundleError, BundleManifest

#: Cache layout version: bump to invalidate every cached export.
CACHE_FORMAT = 1
#: Pins checked against torch when the tower is exported, and int8 against fp32 on every int8 run.
EXPORT_SAMPLE, INT8_SAMPLE = 64, 256
#: Texts per progress step of :func:`encode_with_progress` (each step is length-sorted again inside).
PROGRESS_CHUNK = 2048
#: Files of a transformers directory that decide what a text maps to.
MODEL_SUFFIXES = (".json", ".txt", ".model", ".safetensors", ".bin")
VARIANTS = ("fp32", "int8")
HASH_CHUNK = 1 << 20


@dataclass
class PinTowerOnnx:
    """A usable cached export: its directory, manifest, export-time parity and whether it was just made."""

    directory: Path
    manifest: BundleManifest
    parity: ParityReport
    exported: bool


def model_content_hash(model_dir: str | Path) -> str:
    """sha256 over the names and bytes of the model directory's top-level model/tokenizer files."""
    h = hashlib.sha256()
    files = sorted(f for f in Path(model_dir).iterdir() if f.is_file() and f.suffix in MODEL_SUFFIXES)
    for f in files:
        h.update(f.name.encode() + b"\x00")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
                h.update(chunk)
    return h.hexdigest()


def export_options(max_length: int, parity_sample: Sequence[str] = (), progress: bool = True) -> ExportOptions:
    """How the cached pin tower is exported: the bundle export's defaults (fused fp32, per-token int8),
    checked on the fixed texts plus ``parity_sample``."""
    from encoders.export.parity import PARITY_TEXTS

    return ExportOptions(pin_max_length=int(max_length), parity_texts=[*PARITY_TEXTS, *parity_sample],
                         progress=progress)


def cache_key(model_dir: str | Path, max_length: int) -> str:
    """The cache directory name of ``model_dir`` at ``max_length`` tokens: ``pin-L<max_length>-<16 hex>``,
    a hash of the model files' bytes, ``max_length`` and the export recipe (opset, fusion, int8 recipe)."""
    o = export_options(max_length)
    recipe = {"format": CACHE_FORMAT, "model": model_content_hash(model_dir), "max_length": o.pin_max_length,
              "opset": o.opset, "fuse": o.fuse, "quantize": asdict(o.quantize)}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
    return f"pin-L{int(max_length)}-{digest[:16]}"


def variant_violations(report: ParityReport, thresholds: ParityThresholds, variant: str) -> list[str]:
    """The thresholds ``report`` breaks that matter for ``variant``: fp32 ignores the int8 gate."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant == "fp32":
        thresholds = replace(thresholds, int8_cos_mean=-1.0, int8_cos_min=-1.0)
    return violations(report, thresholds)


def sample_texts(texts: Sequence[str], n: int) -> list[str]:
    """``n`` texts spread evenly over ``texts`` sorted by length (shortest and longest included)."""
    if len(texts) <= n:
        return list(texts)
    order = np.argsort([len(t) for t in texts], kind="stable")
    picks = np.unique(np.linspace(0, len(texts) - 1, n).round().astype(int))
    return [texts[int(order[i])] for i in picks]


def sample_agreement(reference: BundleEncoder, candidate: BundleEncoder, texts: Sequence[str]) -> dict[str, float]:
    """Row cosine of ``candidate`` (e.g. int8) vs ``reference`` (fp32) on ``texts``, no torch:
    ``{"n", "cos_mean", "cos_min"}``."""
    texts = list(texts)
    if not texts:
        return {"n": 0, "cos_mean": 1.0, "cos_min": 1.0}
    cos = row_cosine(reference.encode(texts), candidate.encode(texts))
    return {"n": len(texts), "cos_mean": float(cos.mean()), "cos_min": float(cos.min())}


def _read_cached(directory: Path) -> PinTowerOnnx | None:
    """The export in ``directory`` when it is complete (manifest with parity figures, every file present)."""
    if not (directory / MANIFEST_NAME).is_file():
        return None
    try:
        manifest = BundleManifest.read(directory)
        parity = ParityReport(**manifest.parity)
    except (BundleError, TypeError):
        return None
    files = [*manifest.files.values(), manifest.tokenizer]
    if manifest.kind != "pin" or not all((directory / f).is_file() for f in files):
        return None
    return PinTowerOnnx(directory, manifest, parity, exported=False)


def _ensure_cache_root(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# exported ONNX weights (searchsage pins embed): never commit them\n*\n")


def pin_tower_onnx(
    model_dir: str | Path,
    cache_root: str | Path,
    max_length: int,
    parity_sample: Sequence[str] = (),
    threads: int = 2,
    progress: bool = True,
) -> PinTowerOnnx:
    """The cached ONNX pin tower of ``model_dir`` at ``max_length`` tokens, exported first when missing.

    A new export is written to a temporary directory and renamed into place once its parity has been
    measured (so an interrupted export is never mistaken for a finished one). ``parity_sample``
    (e.g. some of the pins to embed) is checked against torch along with the fixed check set. The
    export is cached whatever its figures: the caller judges them per run and variant with
    :func:`variant_violations` (so a looser threshold needs no re-export).
    """
    root = Path(cache_root).expanduser()
    final = root / cache_key(model_dir, max_length)
    cached = _read_cached(final)
    if cached is not None:
        return cached
    _ensure_cache_root(root)
    tmp = root / f"{final.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _export(Path(model_dir), tmp, max_length, list(parity_sample), threads, progress)
        shutil.rmtree(final, ignore_errors=True)  # a stale directory without a usable manifest
        tmp.rename(final)
    except OSError:
        if _read_cached(final) is None:
            raise
    finally:  # another process finished the same export first (its copy is used), or ours failed
        shutil.rmtree(tmp, ignore_errors=True)
    result = _read_cached(final)
    if result is None:
        raise ParityError(f"{final}: the export wrote no parity figures")
    result.exported = True
    return result


@contextlib.contextmanager
def transformers_progress(enabled: bool) -> Iterator[None]:
    """Let transformers show its own bars (weights loading) only when ``enabled``; restored afterwards."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.is_progress_bar_enabled()
    (hf_logging.enable_progress_bar if enabled and before else hf_logging.disable_progress_bar)()
    try:
        yield
    finally:
        (hf_logging.enable_progress_bar if before else hf_logging.disable_progress_bar)()


def _export(model_dir: Path, tower_dir: Path, max_length: int, sample: list[str], threads: int,
            progress: bool) -> None:
    """Export, fuse, quantise and measure (needs torch); the figures go to ``manifest.json:parity``."""
    import torch

    from encoders.export.bundle import export_tower
    from encoders.export.onnx_export import build_pin_tower

    options = export_options(max_length, sample, progress)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with transformers_progress(progress):
            tower = build_pin_tower(model_dir, max_length)
        with contextlib.suppress(ParityError):  # judged per variant by the caller, from the manifest's figures
            export_tower(tower, "pin", tower_dir, options, {"base_model_dir": str(model_dir), "cache": True})
    finally:
        torch.set_num_threads(previous)


def encode_with_progress(encoder: BundleEncoder, texts: Sequence[str], progress: bool = True,
                         desc: str = "encode", chunk: int = PROGRESS_CHUNK) -> np.ndarray:
    """``encoder.encode(texts)`` with a tqdm bar: texts sorted by length, encoded ``chunk`` at a time
    (each chunk in the encoder's own length-sorted, token-capped calls), rows back in input order."""
    from tqdm.auto import tqdm

    texts = list(texts)
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    order = np.argsort([len(t) for t in texts], kind="stable")
    with tqdm(total=len(texts), desc=desc, unit="pin", disable=not progress) as bar:
        for start in range(0, len(texts), chunk):
            idx = order[start : start + chunk]
            out[idx] = encoder.encode([texts[i] for i in idx])
            bar.update(len(idx))
    return out


def embed_onnx(
    model_dir: str | Path,
    texts: Sequence[str],
    variant: str,
    cache_root: str | Path,
    *,
    max_length: int,
    threads: int,
    batch_size: int,
    max_tokens: int,
    thresholds: ParityThresholds,
    progress: bool = True,
) -> tuple[np.ndarray, float, dict[str, object]]:
    """Embed ``texts`` with the cached ONNX pin tower's ``variant`` → ``(embeddings, seconds, figures)``.

    ``seconds`` is the encoding alone (export and checks excluded); ``figures`` (for ``pin_tower.json``)
    holds the tower's version and directory and the parity figures it was admitted on. Raises
    :class:`~encoders.export.parity.ParityError` (nothing encoded) when ``variant`` fails its gate on
    the export's check set, or, for int8, its cosine to fp32 on a sample of ``texts``.
    """
    texts = list(texts)
    tower = pin_tower_onnx(model_dir, cache_root, max_length, sample_texts(texts, EXPORT_SAMPLE), threads, progress)
    p = tower.parity
    hint = ("use --runtime onnx-fp32 (the same vectors as torch) or loosen --int8-cos-mean/--int8-cos-min"
            if variant == "int8" else "use --runtime torch")
    bad = variant_violations(p, thresholds, variant)
    if bad:
        raise ParityError(f"--runtime onnx-{variant} refused: the ONNX pin tower in {tower.directory} fails its "
                          f"parity gate on {p.n_texts} check texts ({'; '.join(bad)}); {hint}")
    enc = BundleEncoder(tower.directory, variant=variant, threads=threads, batch_size=batch_size, kind="pin",
                        max_tokens=max_tokens)
    figures: dict[str, object] = {
        "model_version": enc.model_version, "directory": str(tower.directory.resolve()), "exported": tower.exported,
        "parity_texts": p.n_texts, "fp32_max_abs_diff": p.fp32_max_abs_diff,
        "int8_cos_mean": p.int8_cos_mean, "int8_cos_min": p.int8_cos_min,
    }
    if variant == "int8":
        ref = BundleEncoder(tower.directory, variant="fp32", threads=threads, kind="pin", max_tokens=max_tokens)
        agree = sample_agreement(ref, enc, sample_texts(texts, INT8_SAMPLE))
        figures["int8_sample"] = agree
        low = [f"{k} {agree[f'cos_{k}']:.4f} < {limit:g}" for k, limit in
               (("mean", thresholds.int8_cos_mean), ("min", thresholds.int8_cos_min)) if not agree[f"cos_{k}"] >= limit]
        if low:
            raise ParityError(f"--runtime onnx-int8 refused: int8 vs fp32 cosine on {agree['n']} of these pins: "
                              f"{', '.join(low)}; {hint}")
    t0 = time.perf_counter()
    emb = encode_with_progress(enc, texts, progress, desc=f"embed pins (onnx-{variant})")
    return emb, time.perf_counter() - t0, figures
