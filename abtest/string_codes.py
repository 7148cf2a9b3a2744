"""Vectorised string → integer code lookup against a fixed key set (pure computation).

:class:`StringCodes` keeps the keys as sorted NUL-padded fixed-width bytes and answers a lookup with
``np.searchsorted``: the key set is prepared once, so each record batch's dictionary (a few thousand
user ids or queries) is mapped without hashing the whole key set again, as ``pc.index_in`` would.
Keys or values holding a NUL byte (which fixed-width bytes cannot tell from padding) and very large
key sets use ``pc.index_in``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

MAX_FIXED_BYTES = 256 * 2**20  # larger key sets fall back to arrow's hash lookup


def _string_parts(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(offsets (n+1,) int64 relative to the first value, data bytes uint8)`` of a string array."""
    arr = arr.cast(pa.large_string()) if not pa.types.is_large_string(arr.type) else arr
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset: arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return offsets - offsets[0], data[offsets[0]: offsets[-1]]


def fixed_width(arr: pa.Array, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``arr`` as numpy ``S{width}`` (NUL-padded) and a mask of values that fit (not null, ≤ width bytes)."""
    n = len(arr)
    offsets, data = _string_parts(arr)
    lengths = np.diff(offsets)
    fits = lengths <= width
    if arr.null_count:
        fits &= np.asarray(arr.is_valid())
    width = max(width, 1)
    if fits.all() and n and (lengths == width).all():
        return data.view(f"S{width}").copy(), fits
    mat = np.zeros((n, width), dtype=np.uint8)
    keep = np.flatnonzero(fits)
    if keep.size:
        ln = lengths[keep]
        rows = np.repeat(keep, ln)
        starts = np.repeat(offsets[keep], ln)
        cols = np.arange(rows.size, dtype=np.int64) - np.repeat(np.cumsum(ln) - ln, ln)
        mat[rows, cols] = data[starts + cols]
    return mat.view(f"S{width}").ravel(), fits


class StringCodes:
    """Vectorised lookup of strings in a fixed key set: ``lookup(values)[i]`` = position of
    ``values[i]`` in ``keys`` or -1 (absent or null). Built once; each lookup is a binary search over
    NUL-padded fixed-width bytes (keys or values holding a NUL byte use ``pc.index_in`` instead)."""

    def __init__(self, keys: pa.Array):
        self.keys = keys.cast(pa.string()) if not pa.types.is_string(keys.type) else keys
        offsets, data = _string_parts(self.keys)
        self.width = int(np.diff(offsets).max()) if len(self.keys) else 0
        self._hash = bool((data == 0).any()) or len(self.keys) * max(self.width, 1) > MAX_FIXED_BYTES
        if not self._hash:
            fixed, _ = fixed_width(self.keys, self.width)
            self._order = np.argsort(fixed, kind="stable")
            self._sorted = fixed[self._order]

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, values: pa.Array, mapping: np.ndarray | None = None, default: int = -1,
               dtype: type = np.int64) -> np.ndarray:
        """``(len(values),)`` codes (``dtype``), ``default`` where absent or null; with ``mapping``,
        ``mapping[code]`` instead (its dtype). A dictionary array is looked up once per dictionary
        entry and spread by its indices."""
        if pa.types.is_dictionary(values.type):
            per_entry = self.lookup(values.dictionary, mapping, default, dtype)
            idx = values.indices
            if len(per_entry) == 0:
                return np.full(len(values), default, dtype=per_entry.dtype)
            out = np.take(per_entry, np.asarray(idx.fill_null(0) if idx.null_count else idx))  # take: 2× [] speed
            if idx.null_count:
                out[~np.asarray(idx.is_valid())] = default
            return out
        codes = self._codes(values)
        if mapping is None:
            return np.where(codes >= 0, codes, default).astype(dtype, copy=False)
        return np.where(codes >= 0, mapping[np.maximum(codes, 0)] if len(mapping) else default,
                        default).astype(mapping.dtype)

    def _codes(self, values: pa.Array) -> np.ndarray:
        n = len(values)
        if n == 0 or len(self.keys) == 0:
            return np.full(n, -1, dtype=np.int64)
        if not self._hash:
            _, data = _string_parts(values)
            if not (data == 0).any():
                fixed, fits = fixed_width(values, self.width)
                pos = np.minimum(np.searchsorted(self._sorted, fixed), len(self._sorted) - 1)
                hit = fits & (self._sorted[pos] == fixed)
                return np.where(hit, self._order[pos], -1).astype(np.int64)
        found = pc.index_in(values.cast(pa.string()), value_set=self.keys)
        return np.asarray(found.fill_null(-1), dtype=np.int64)
