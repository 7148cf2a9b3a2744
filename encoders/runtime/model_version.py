"""The ``model_version`` of a query embedding as a structured value, and THE rule for reusing one.

A version string is ``<bundle>[+<variant>][+pinfb-k<K>-w<W>-<digest>]``: the export's content hash
(``BundleManifest.model_version``), the ONNX variant (absent = fp32; ``+int8``) and the pin-feedback
settings (:attr:`encoders.runtime.pin_feedback.PinFeedbackIndex.version_tag`). Parts this module does
not know are kept in ``extra`` and take part in the comparison.

The compatibility rule, used by ``searchsage serve``'s cache-through store,
``EmbeddingStore.fetch(keys, expect_version=...)`` and the Feast on-demand view ``query_vector``
(``live_query_embedding``, against the live encoder's version): **a stored embedding may be served for a
model only if every part of its version equals the model's** — bundle, variant, feedback settings
and any extra part. There is no "close enough": an int8 or un-refined (no pin feedback) vector is a
different vector, so a row of any other version is stale and counts as missing.

>>> v = ModelVersion.parse("query-98c4071e04ab+int8+pinfb-k5-w0.1-0123456789ab")
>>> (v.bundle, v.variant, v.feedback)
('query-98c4071e04ab', 'int8', 'pinfb-k5-w0.1-0123456789ab')
>>> is_compatible(v, "query-98c4071e04ab+int8")
False
"""

from __future__ import annotations

from dataclasses import dataclass

FP32 = "fp32"
#: Variant tags a version string may carry after the bundle hash (fp32 carries none).
VARIANT_TAGS: frozenset[str] = frozenset({"int8", "fp16"})
FEEDBACK_PREFIX = "pinfb-"


class ModelVersionError(ValueError):
    """A version string that cannot be parsed (empty, or an empty part)."""


@dataclass(frozen=True)
class ModelVersion:
    """``bundle`` (export hash), ``variant`` (``fp32``/``int8``), ``feedback`` (pin-feedback tag or
    ``None``) and ``extra`` (unknown ``+`` parts, in order). ``str()`` gives the canonical string."""

    bundle: str
    variant: str = FP32
    feedback: str | None = None
    extra: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str | ModelVersion) -> ModelVersion:
        """Parse a stored or served version string (a :class:`ModelVersion` is returned as is)."""
        if isinstance(text, ModelVersion):
            return text
        if not isinstance(text, str) or not text.strip():
            raise ModelVersionError(f"model_version must be a non-empty string, got {text!r}")
        bundle, *parts = text.strip().split("+")
        if not bundle or any(not p for p in parts):
            raise ModelVersionError(f"model_version {text!r} has an empty part")
        variant, feedback, extra = FP32, None, []
        for p in parts:
            if p in VARIANT_TAGS and variant == FP32:
                variant = p
            elif p.startswith(FEEDBACK_PREFIX) and feedback is None:
                feedback = p
            else:
                extra.append(p)
        return cls(bundle, variant, feedback, tuple(extra))

    def __str__(self) -> str:
        parts = [self.bundle]
        if self.variant != FP32:
            parts.append(self.variant)
        if self.feedback:
            parts.append(self.feedback)
        return "+".join([*parts, *self.extra])

    def to_dict(self) -> dict[str, object]:
        """JSON-ready parts (for ``/health``)."""
        return {"bundle": self.bundle, "variant": self.variant, "feedback": self.feedback, "extra": list(self.extra)}

    def serves(self, stored: str | ModelVersion | None) -> bool:
        """Whether a row stored under ``stored`` may be served for this model (see :func:`is_compatible`)."""
        return is_compatible(self, stored)


def is_compatible(model: str | ModelVersion, stored: str | ModelVersion | None) -> bool:
    """THE rule: a row stored under ``stored`` may be served for ``model`` only on an exact match of
    all parts (bundle, variant, feedback, extra). A missing or unparsable ``stored`` never matches."""
    if stored is None:
        return False
    try:
        return ModelVersion.parse(model) == ModelVersion.parse(stored)
    except ModelVersionError:
        return False
