"""Byte-exact codec for the Redis records that Feast 0.67 writes and reads (no Feast import).

Feast's Redis online store keeps one Redis hash per entity:

* key: ``serialize_entity_key(EntityKey, v3) + project`` — for one join key that is
  ``<u32 1><u32 STRING=2><u32 len(name)><name><u32 type><u32 len(value)><value><project>``
  (little-endian ``u32``; ``type`` 2 for a string value, 4 for an int64 value packed ``<q``);
* hash field per feature: ``mmh3_32("<feature_view>:<feature>")`` as 4 little-endian bytes,
  value: a serialized ``feast.types.Value`` protobuf;
* hash field ``_ts:<feature_view>``: a serialized ``google.protobuf.Timestamp``.

An ``Array(Float32)`` feature is ``Value.float_list_val`` (field 16, a ``FloatList`` whose
``repeated float val = 1`` is packed): ``0x82 0x01 <varint n> 0x0a <varint 4*D> <D float32 LE>``.
Building and parsing that with numpy avoids one Python ``float`` per element, which is where
stock Feast spends its time. Tests check every function here against protobuf/Feast.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import datetime, timezone

import mmh3
import numpy as np

#: Feast ``ValueType`` numbers used in entity keys.
VALUE_TYPE_STRING = 2
VALUE_TYPE_INT64 = 4

_FLOAT_LIST_TAG = b"\x82\x01"  # field 16, wire type 2
_FLOAT_LIST_INNER_TAG = b"\x0a"  # FloatList.val, field 1, wire type 2 (packed)
_STRING_VAL_TAG = b"\x12"  # Value.string_val, field 2, wire type 2


class RecordDecodeError(ValueError):
    """A Redis value is not the ``float_list_val`` record this codec expects."""


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def feature_field(feature_view: str, feature: str) -> bytes:
    """The 4-byte Redis hash field Feast uses for ``feature_view:feature`` (murmur3, LE)."""
    return struct.pack("<I", mmh3.hash(f"{feature_view}:{feature}", signed=False))


def timestamp_field(feature_view: str) -> bytes:
    """The hash field holding the event timestamp of ``feature_view``."""
    return f"_ts:{feature_view}".encode()


class EntityKeyEncoder:
    """Builds Feast v3 Redis keys for one single-join-key entity.

    ``encode(["a", "b"])`` -> list of ``bytes`` keys, identical to
    ``feast.infra.online_stores.helpers._redis_key(project, EntityKey(...), 3)``.
    """

    def __init__(self, join_key: str, project: str, value_type: int = VALUE_TYPE_STRING) -> None:
        if value_type not in (VALUE_TYPE_STRING, VALUE_TYPE_INT64):
            raise ValueError(f"entity value type {value_type} is not supported (string=2, int64=4)")
        name = join_key.encode("utf8")
        self._prefix = struct.pack("<III", 1, VALUE_TYPE_STRING, len(name)) + name
        self._project = project.encode("utf8")
        self.value_type = value_type

    def encode_one(self, value: str | int) -> bytes:
        if self.value_type == VALUE_TYPE_STRING:
            raw = str(value).encode("utf8")
        else:
            raw = struct.pack("<q", int(value))
        return b"".join((self._prefix, struct.pack("<II", self.value_type, len(raw)), raw, self._project))

    def encode(self, values: Sequence[str | int]) -> list[bytes]:
        return [self.encode_one(v) for v in values]


def entity_key_prefix(join_keys: Sequence[str]) -> bytes:
    """The v3 key prefix of an entity with these join keys (no values): what every Redis key of its
    views starts with; ``feast.infra.key_encoding_utils.serialize_entity_key_prefix(join_keys, 3)``."""
    names = list(join_keys) if len(join_keys) == 1 else sorted(join_keys)
    out = [struct.pack("<I", len(names))]
    for name in names:
        raw = name.encode("utf8")
        out.append(struct.pack("<II", VALUE_TYPE_STRING, len(raw)) + raw)
    return b"".join(out)


def encode_float_list(matrix: np.ndarray) -> list[bytes]:
    """Serialize each row of ``matrix`` (N, D) as a ``Value(float_list_val=...)`` protobuf.

    Returns N ``bytes`` objects, byte-identical to ``Value(float_list_val=FloatList(val=row))
    .SerializeToString()`` for float32 rows (D >= 1).
    """
    m = np.ascontiguousarray(matrix, dtype="<f4")
    if m.ndim != 2:
        raise ValueError(f"expected a 2-d (N, D) matrix, got shape {m.shape}")
    n, d = m.shape
    inner_len = 4 * d
    inner_header = _FLOAT_LIST_INNER_TAG + varint(inner_len)
    header = _FLOAT_LIST_TAG + varint(len(inner_header) + inner_len) + inner_header
    width = len(header) + inner_len
    buf = np.empty((n, width), dtype=np.uint8)
    buf[:, : len(header)] = np.frombuffer(header, dtype=np.uint8)
    buf[:, len(header) :] = m.view(np.uint8).reshape(n, inner_len)
    flat = buf.tobytes()
    return [flat[i * width : (i + 1) * width] for i in range(n)]


def encode_string_value(text: str) -> bytes:
    """``Value(string_val=text).SerializeToString()``."""
    raw = text.encode("utf8")
    return _STRING_VAL_TAG + varint(len(raw)) + raw


def decode_string_value(raw: bytes | None) -> str | None:
    """``Value.FromString(raw).string_val`` (``None`` when ``raw`` is absent or empty; ``""`` for a
    Value that holds something else). Raises :class:`RecordDecodeError` on bytes that are not a
    protobuf message."""
    if not raw:
        return None
    text = ""
    i, n = 0, len(raw)
    try:
        if raw[0] == _STRING_VAL_TAG[0]:  # the usual record: string_val alone
            length, i = _read_varint(raw, 1)
            if i + length == n:
                return raw[i:].decode("utf8")
            i = 0
        while i < n:
            key, i = _read_varint(raw, i)
            field_number, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _read_varint(raw, i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                length, i = _read_varint(raw, i)
                if field_number == 2:
                    text = raw[i : i + length].decode("utf8")
                i += length
            else:
                raise RecordDecodeError(f"wire type {wire}")
            if i > n:
                raise RecordDecodeError("truncated")
    except (IndexError, UnicodeDecodeError, RecordDecodeError) as exc:
        raise RecordDecodeError(f"stored value is not a protobuf Value ({exc})") from None
    return text


def _read_varint(raw: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = raw[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def decode_float_lists(values: Sequence[bytes | None], dim: int, on_bad: str = "raise") -> tuple[np.ndarray, np.ndarray]:
    """Parse serialized ``float_list_val`` Values into ``(N, dim) float32`` plus a found mask.

    ``None``/empty entries (missing keys or fields) give a row of zeros and ``found=False``.
    A present value of another width or type raises :class:`RecordDecodeError`, or with
    ``on_bad="miss"`` is a zero row with ``found=False`` too (one bad row never fails the others).
    """
    if on_bad not in ("raise", "miss"):
        raise ValueError(f"on_bad must be 'raise' or 'miss', got {on_bad!r}")
    header = _float_list_header(dim)
    width = len(header) + 4 * dim
    n = len(values)
    found = np.fromiter((v is not None and len(v) > 0 for v in values), dtype=bool, count=n)
    out = np.zeros((n, dim), dtype=np.float32)
    if not found.any():
        return out, found
    present = [v for v in values if v]
    joined = b"".join(present)
    raw = np.frombuffer(joined, dtype=np.uint8)
    ok = len(joined) == width * len(present)
    if ok:
        raw = raw.reshape(len(present), width)
        ok = bool((raw[:, : len(header)] == np.frombuffer(header, dtype=np.uint8)).all())
    if not ok:
        if on_bad == "raise":
            _raise_bad_record(present, header, width, dim)
        found = np.fromiter((bool(v) and len(v) == width and v.startswith(header) for v in values), dtype=bool, count=n)
        present = [v for v, f in zip(values, found, strict=True) if f]
        if not present:
            return out, found
        raw = np.frombuffer(b"".join(present), dtype=np.uint8).reshape(len(present), width)
    out[found] = raw[:, len(header) :].copy().view("<f4").reshape(len(present), dim)
    return out, found


def _float_list_header(dim: int) -> bytes:
    inner_header = _FLOAT_LIST_INNER_TAG + varint(4 * dim)
    return _FLOAT_LIST_TAG + varint(len(inner_header) + 4 * dim) + inner_header


def _raise_bad_record(present: Sequence[bytes], header: bytes, width: int, dim: int) -> None:
    for i, v in enumerate(present):
        if len(v) != width or not v.startswith(header):
            raise RecordDecodeError(
                f"stored value #{i} is not a float_list_val of length {dim} "
                f"({len(v)} bytes, expected {width}); was the feature view written with another D?"
            )


def encode_timestamp(ts: datetime) -> bytes:
    """``google.protobuf.Timestamp`` bytes for ``ts`` (naive = UTC), microsecond precision."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    micros = round((ts - datetime(1970, 1, 1, tzinfo=timezone.utc)).total_seconds() * 1_000_000)
    seconds, rem = divmod(micros, 1_000_000)
    return encode_timestamp_parts(seconds, rem * 1000)


def encode_timestamp_parts(seconds: int, nanos: int) -> bytes:
    """``Timestamp(seconds=..., nanos=...)`` bytes; zero fields are omitted like protobuf does."""
    out = b""
    if seconds:
        out += b"\x08" + varint(seconds & 0xFFFFFFFFFFFFFFFF)
    if nanos:
        out += b"\x10" + varint(nanos)
    return out


def decode_timestamp_seconds(raw: bytes | None) -> float | None:
    """Seconds since the epoch from ``Timestamp`` bytes (``None`` if absent)."""
    if not raw:
        return None
    seconds = nanos = 0
    i = 0
    while i < len(raw):
        tag = raw[i]
        val, i = _read_varint(raw, i + 1)
        if tag == 0x08:
            seconds = val
        elif tag == 0x10:
            nanos = val
    return seconds + nanos / 1e9
