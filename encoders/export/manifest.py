"""Building a tower's ``manifest.json``: settings, content-hash model version, parity figures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from encoders.runtime.manifest import QUERY_NORMALIZATION, BundleManifest

HASH_CHUNK = 1 << 20


def content_version(kind: str, files: list[Path], settings: dict[str, Any]) -> str:
    """``<kind>-<12 hex>``: sha256 over the files' bytes (in order) and the JSON of ``settings``.

    The same weights, tokenizer and settings always give the same version; anything that changes
    what an input string maps to changes it.
    """
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(HASH_CHUNK), b""):
                h.update(chunk)
    h.update(json.dumps(settings, sort_keys=True).encode())
    return f"{kind}-{h.hexdigest()[:12]}"


def build_manifest(
    kind: str,
    tower_dir: Path,
    *,
    dim: int,
    max_length: int,
    pooling: str,
    normalize: bool,
    base_model: str,
    opset: int,
    source: dict[str, Any] | None = None,
) -> BundleManifest:
    """A manifest for ``tower_dir`` (its ``model.onnx`` and ``tokenizer.json`` must exist); parity empty.

    ``source`` (how the export was made, e.g. the quantisation settings) is recorded and hashed into
    the version too, so a re-export with another int8 recipe gets another version.
    """
    text_normalization = QUERY_NORMALIZATION if kind == "query" else None
    settings = {"kind": kind, "dim": dim, "max_length": max_length, "pooling": pooling,
                "normalize": normalize, "text_normalization": text_normalization,
                "recipe": {k: v for k, v in (source or {}).items() if k in ("fused", "quantize")}}
    version = content_version(kind, [tower_dir / "model.onnx", tower_dir / "tokenizer.json"], settings)
    return BundleManifest(
        kind=kind,  # type: ignore[arg-type]
        dim=dim, max_length=max_length, pooling=pooling, normalize=normalize, base_model=base_model,
        model_version=version, text_normalization=text_normalization, opset=opset,
        variant_versions={"fp32": version, "int8": f"{version}+int8"},
        source=dict(source or {}),
    )
