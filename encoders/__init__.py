"""SearchSage encoders: data, the query tower, training, evaluation, ONNX bundles and serving."""

from __future__ import annotations

__version__ = "0.1.0"
