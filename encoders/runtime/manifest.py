"""The bundle manifest: what a tower directory holds and how its model must be fed (torch-free).

A tower directory (``<bundle>/query`` or ``<bundle>/pin``) holds ``model.onnx`` (fp32),
``model.int8.onnx``, ``tokenizer.json`` and ``manifest.json``. This module only reads and writes
the manifest; building it (hashing, parity figures) lives in :mod:`encoders.export`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
#: Graph input / output names every bundle model uses.
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "sentence_embedding"
#: The only text normalisation a bundle may declare (besides none): :func:`encoders.normalize.normalize_query`.
QUERY_NORMALIZATION = "encoders.normalize.normalize_query"

Kind = Literal["query", "pin"]


class BundleError(ValueError):
    """A bundle directory is missing files, has a bad manifest, or does not match what was expected."""


@dataclass
class BundleManifest:
    """Everything a runtime needs to know about one exported tower.

    ``dim`` is D (the output width); ``max_length`` the token limit (longer texts are truncated);
    ``pooling`` ``"cls"|"mean"``; ``normalize`` whether outputs are L2-normalised;
    ``text_normalization`` is :data:`QUERY_NORMALIZATION` for query towers and ``None`` for pins;
    ``model_version`` is a content hash of the fp32 model, tokenizer and these settings.
    ``files`` maps variant name (``fp32``, ``int8``) to a file in the tower directory;
    ``variant_versions`` gives each variant its own version string (``<model_version>`` for fp32,
    ``<model_version>+int8`` for int8), because the two variants give slightly different vectors:
    an embedding stored under one version is never mistaken for the other variant's.
    ``parity`` holds the figures measured at export time (see ``encoders.export.parity``).
    """

    kind: Kind
    dim: int
    max_length: int
    pooling: str
    normalize: bool
    base_model: str
    model_version: str
    text_normalization: str | None
    files: dict[str, str] = field(default_factory=lambda: {"fp32": "model.onnx", "int8": "model.int8.onnx"})
    tokenizer: str = "tokenizer.json"
    input_names: list[str] = field(default_factory=lambda: list(INPUT_NAMES))
    output_name: str = OUTPUT_NAME
    opset: int = 17
    variant_versions: dict[str, str] = field(default_factory=dict)
    recommended_variant: dict[str, str] = field(default_factory=dict)
    parity: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    format: int = MANIFEST_FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / MANIFEST_NAME
        path.write_text(self.to_json() + "\n")
        return path

    @classmethod
    def read(cls, directory: str | Path) -> BundleManifest:
        """Read ``<directory>/manifest.json``; :class:`BundleError` names the file and the problem."""
        path = Path(directory) / MANIFEST_NAME
        if not path.is_file():
            raise BundleError(f"{path} not found: expected a tower directory written by `searchsage export`")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise BundleError(f"{path} is not valid JSON: {exc}") from None
        known = set(cls.__dataclass_fields__)
        missing = [k for k in ("kind", "dim", "max_length", "pooling", "normalize", "model_version") if k not in data]
        if missing:
            raise BundleError(f"{path} lacks required field(s) {missing}")
        if data.get("format", MANIFEST_FORMAT) > MANIFEST_FORMAT:
            raise BundleError(f"{path} has manifest format {data['format']}; this runtime reads <= {MANIFEST_FORMAT}")
        if data["kind"] not in ("query", "pin"):
            raise BundleError(f"{path}: kind must be 'query' or 'pin', got {data['kind']!r}")
        data.setdefault("base_model", "")
        data.setdefault("text_normalization", QUERY_NORMALIZATION if data["kind"] == "query" else None)
        return cls(**{k: v for k, v in data.items() if k in known})

    def version_of(self, variant: str) -> str:
        """The version string embeddings of ``variant`` are stored under."""
        if variant in self.variant_versions:
            return self.variant_versions[variant]
        return self.model_version if variant == "fp32" else f"{self.model_version}+{variant}"
