"""Torch-free inference for exported bundles: onnxruntime + the ``tokenizers`` library.

Nothing in this package may import torch or transformers (a test checks ``sys.modules``).
"""

from __future__ import annotations

from encoders.runtime.bundle import BundleEncoder, resolve_tower_dir
from encoders.runtime.manifest import BundleError, BundleManifest

__all__ = ["BundleEncoder", "BundleError", "BundleManifest", "resolve_tower_dir"]
