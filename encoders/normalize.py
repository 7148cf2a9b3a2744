"""Query normalisation, defined once and used by training, evaluation, encoding and serving.

The rule: Unicode NFKC, lowercase, trim, collapse every run of whitespace to one space.
A normalised query is the entity key of the ``query`` entity in the feature store, so any
change here changes keys: bump the bundle version when you change it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

_WS = re.compile(r"\s+")


def normalize_query(text: str) -> str:
    """Return the canonical form of one query string.

    >>> normalize_query("  Angle   BRACKET\\t")
    'angle bracket'
    """
    if not isinstance(text, str):
        raise TypeError(f"query must be a str, got {type(text).__name__}: {text!r}")
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def normalize_queries(texts: Iterable[str]) -> list[str]:
    """Normalise many queries; the error names the position of a non-string item."""
    out: list[str] = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"query at position {i} must be a str, got {type(t).__name__}: {t!r}")
        out.append(normalize_query(t))
    return out
