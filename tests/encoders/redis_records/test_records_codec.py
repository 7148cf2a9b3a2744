"""The numpy codec must produce/parse exactly the bytes Feast + protobuf produce."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
from feast.infra.online_stores.helpers import _mmh3, _redis_key
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import FloatList, Value
from google.protobuf.timestamp_pb2 import Timestamp

from encoders.redis_records import codec


@pytest.mark.parametrize("dim", [1, 15, 16, 31, 32, 256, 384, 4097])
def test_float_list_bytes_match_protobuf_and_round_trip(dim: int) -> None:
    m = np.random.default_rng(dim).standard_normal((4, dim), dtype=np.float32)
    m[0, 0], m[1, 0], m[2, 0] = -0.0, np.nan, np.inf
    enc = codec.encode_float_list(m)
    for row, b in zip(m, enc, strict=True):
        assert b == Value(float_list_val=FloatList(val=row)).SerializeToString()
    back, found = codec.decode_float_lists([*enc, None, b""], dim)
    assert found.tolist() == [True] * 4 + [False, False]
    assert back[:4].tobytes() == m.tobytes() and not back[4:].any()
    parsed = Value()
    parsed.ParseFromString(enc[3])
    assert np.asarray(parsed.float_list_val.val, dtype=np.float32).tobytes() == m[3].tobytes()


def test_decode_refuses_other_widths_and_types() -> None:
    enc = codec.encode_float_list(np.ones((1, 8), dtype=np.float32))
    with pytest.raises(codec.RecordDecodeError, match="length 16"):
        codec.decode_float_lists(enc, 16)
    with pytest.raises(codec.RecordDecodeError):
        codec.decode_float_lists([Value(string_val="x" * 30).SerializeToString()], 8)


def test_keys_fields_strings_timestamps_match_feast() -> None:
    enc = codec.EntityKeyEncoder("query", "proj")
    for text in ("red chair", "héllo wörld", ""):
        ek = EntityKey(join_keys=["query"], entity_values=[Value(string_val=text)])
        assert enc.encode_one(text) == _redis_key("proj", ek, entity_key_serialization_version=3)
    ienc = codec.EntityKeyEncoder("pin_id", "p", codec.VALUE_TYPE_INT64)
    ek = EntityKey(join_keys=["pin_id"], entity_values=[Value(int64_val=-5)])
    assert ienc.encode_one(-5) == _redis_key("p", ek, entity_key_serialization_version=3)
    assert codec.feature_field("query_embedding", "embedding") == _mmh3("query_embedding:embedding")
    assert codec.encode_string_value("query-abc") == Value(string_val="query-abc").SerializeToString()
    for ts in (datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc), datetime(1970, 1, 1, tzinfo=timezone.utc)):
        pb = Timestamp()
        pb.FromDatetime(ts)
        assert codec.encode_timestamp(ts) == pb.SerializeToString()
        assert codec.decode_timestamp_seconds(pb.SerializeToString()) in (None, pytest.approx(ts.timestamp()))


def test_key_prefixes_and_string_values_decode_like_feast() -> None:
    """What the records layer reads without Feast: the v3 key prefix (vector index) and ``string_val``."""
    from feast.infra.key_encoding_utils import serialize_entity_key_prefix

    for keys in (["pin_id"], [""], ["b", "a"], ["quéry", "pin_id", "x"]):
        assert codec.entity_key_prefix(keys) == serialize_entity_key_prefix(keys, 3)
    assert codec.EntityKeyEncoder("pin_id", "p").encode_one("x").startswith(codec.entity_key_prefix(["pin_id"]))
    for value in (Value(string_val="pin-abc123"), Value(string_val="héllo " * 40), Value(string_val=""),
                  Value(int64_val=7), Value(float_list_val=FloatList(val=[1.0, 2.0])), Value(double_val=0.5)):
        raw = value.SerializeToString()
        assert codec.decode_string_value(raw) == (value.string_val if raw else None)
    assert codec.decode_string_value(None) is None
    with pytest.raises(codec.RecordDecodeError):
        codec.decode_string_value(b"\x12\x09short")
