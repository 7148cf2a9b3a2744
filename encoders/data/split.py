"""The train/eval split of queries, shared by training and evaluation so they never overlap.

A normalised query goes to evaluation when ``int(md5(query).hexdigest(), 16) % modulo == 0``
(modulo 10 → about 10% of distinct queries). This is the Home Depot protocol of the design brief;
keep it so numbers compare.

A validation split for choosing settings without touching the eval split takes the next residue,
``... % modulo == 1``; training leaves it out only when asked (``--hold-out-validation``).
"""

from __future__ import annotations

import hashlib


def is_eval_query(query: str, modulo: int = 10) -> bool:
    """True when the (already normalised) ``query`` belongs to the evaluation split."""
    return int(hashlib.md5(query.encode("utf-8")).hexdigest(), 16) % modulo == 0


def is_validation_query(query: str, modulo: int = 10) -> bool:
    """True when the (already normalised) ``query`` belongs to the validation split (disjoint from
    the evaluation split; about 1/``modulo`` of distinct queries)."""
    return int(hashlib.md5(query.encode("utf-8")).hexdigest(), 16) % modulo == 1
