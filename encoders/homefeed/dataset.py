"""Loading a homefeed dataset directory into arrays: pins, events, interests (torch-free).

:func:`load_homefeed` validates every table (errors name the file, the column and the row; every
``pin_id`` must exist in ``pins.parquet``) and returns a :class:`HomefeedData`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from encoders.data.schema import PINS, DataValidationError, pin_embedding_matrix, read_table
from encoders.homefeed.events import EventLog, IdVocab, InterestBags
from encoders.homefeed.schema import EVENTS, PIN_INTERESTS, USER_INTERESTS, HomefeedPaths, read_homefeed_table

MAX_INTERESTS = 8


@dataclass
class HomefeedData:
    """A loaded dataset: ``pin_ids (N,)``, ``pin_matrix (N, D)`` float32 (the frozen space), the positive
    events as an :class:`EventLog`, the raw ``user_interests`` table (or None) and each pin's interest
    id (``None`` where ``pin_interests.parquet`` has none)."""

    root: Path
    pin_ids: list[str]
    pin_matrix: np.ndarray
    log: EventLog
    user_interests: pa.Table | None
    pin_interest: list[str | None]

    @property
    def dim(self) -> int:
        return int(self.pin_matrix.shape[1])

    def interest_ids(self) -> list[str]:
        """Every interest id the dataset mentions, sorted (the interest vocabulary of a run)."""
        ids = {x for x in self.pin_interest if x is not None}
        if self.user_interests is not None:
            ids.update(self.user_interests.column("interest_id").to_pylist())
        return sorted(ids)

    def bags(self, vocab: IdVocab, user_ids: list[str] | None = None) -> InterestBags:
        """Declared-interest bags for ``user_ids`` (default: the users of the log)."""
        return InterestBags.build(user_ids if user_ids is not None else self.log.user_ids, self.user_interests,
                                  vocab, MAX_INTERESTS)

    def pin_interest_rows(self, vocab: IdVocab) -> np.ndarray:
        """``(N,)`` int64: each pin's interest row (0 = none)."""
        known = [x if x is not None else "" for x in self.pin_interest]
        rows = vocab.rows(known)
        rows[np.array([x is None for x in self.pin_interest], dtype=bool)] = 0
        return rows


def load_homefeed(data_dir: str | Path, events: pa.Table | None = None) -> HomefeedData:
    """Read and validate a homefeed dataset directory (``events`` replaces ``events.parquet`` when given)."""
    paths = HomefeedPaths(Path(data_dir))
    pins = read_table(paths.pins, PINS)
    if "embedding" not in pins.column_names:
        raise DataValidationError(paths.pins, "no embedding column: the frozen pin space is required "
                                  "(`searchsage pins embed DIR` or `searchsage homefeed generate`)", column="embedding")
    pin_ids = pins.column("pin_id").to_pylist()
    id_array = pins.column("pin_id").combine_chunks()
    if events is None:
        events = read_homefeed_table(paths.events, EVENTS, pin_ids=id_array)
    else:
        from encoders.homefeed.schema import validate_homefeed_table

        events = validate_homefeed_table(events, EVENTS, "<events table>", pin_ids=id_array)
    interests = (read_homefeed_table(paths.user_interests, USER_INTERESTS)
                 if paths.user_interests.exists() else None)
    pin_interest: list[str | None] = [None] * len(pin_ids)
    if paths.pin_interests.exists():
        table = read_homefeed_table(paths.pin_interests, PIN_INTERESTS, pin_ids=id_array)
        pos = {p: i for i, p in enumerate(pin_ids)}
        for p, i in zip(table.column("pin_id").to_pylist(), table.column("interest_id").to_pylist(), strict=True):
            pin_interest[pos[p]] = i
    return HomefeedData(paths.root, pin_ids, pin_embedding_matrix(pins), EventLog.from_table(events, pin_ids),
                        interests, pin_interest)
