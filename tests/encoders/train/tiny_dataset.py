"""A tiny training dataset (pins, engagements, judgments) for the trainer tests, in seconds.

Every word is one pin (``p{i}``, text ``"{word} item"``, a seeded random unit embedding); every
``"{color} {word}"`` is an engagement of that pin (task ``shopping`` / ``organic`` alternating over
the colours); ``judgments`` are ``(query, pin_id, grade)`` rows. Imported by bare name like
``serving_helpers`` (pytest puts this folder on ``sys.path``; the torchrun drivers add it).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from encoders.data.schema import write_table


def write_tiny_dataset(root: Path, words: Sequence[str], colors: Sequence[str],
                       judgments: Sequence[tuple[str, str, float]], dim: int = 32,
                       with_embedding: bool = True) -> Path:
    """Write ``pins``/``engagements``/``judgments.parquet`` into ``root`` and return ``root``
    (``with_embedding=False``: the pins have no ``embedding`` column)."""
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(words), dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    pins = {"pin_id": [f"p{i}" for i in range(len(words))], "text": [f"{w} item" for w in words]}
    if with_embedding:
        pins["embedding"] = pa.array(emb.tolist(), pa.list_(pa.float32()))
    write_table(pa.table(pins), root / "pins.parquet", "pins")
    rows = [(f"{c} {w}", f"p{i}", "organic" if j % 2 else "shopping") for i, w in enumerate(words)
            for j, c in enumerate(colors)]
    ts = datetime(2024, 1, 1, tzinfo=timezone.utc)
    write_table(pa.table({
        "query": [r[0] for r in rows], "pin_id": [r[1] for r in rows], "task": [r[2] for r in rows],
        "action": ["save"] * len(rows), "timestamp": pa.array([ts] * len(rows), pa.timestamp("us", tz="UTC")),
    }), root / "engagements.parquet", "engagements")
    write_table(pa.table({"query": [j[0] for j in judgments], "pin_id": [j[1] for j in judgments],
                          "grade": [float(j[2]) for j in judgments]}), root / "judgments.parquet", "judgments")
    return root
