"""``EncodeConfig``: the options of ``searchsage encode``, with the defaults of the code that uses them."""

from __future__ import annotations

import datetime as dt
import inspect
from pathlib import Path

import pytest

from encoders.runtime.bundle import BundleEncoder
from encoders.runtime.config import EncodeConfig
from encoders.runtime.stream import encode_file


def _config(**kw: object) -> EncodeConfig:
    return EncodeConfig(**{"bundle": "b", "kind": "query", "input": "i.csv", "out": "o.parquet", **kw})


def test_defaults_are_the_encoder_and_stream_defaults() -> None:
    enc = inspect.signature(BundleEncoder).parameters
    stream = inspect.signature(encode_file).parameters
    c = _config()
    assert (c.variant, c.threads, c.batch_size) == (enc["variant"].default, enc["threads"].default,
                                                    enc["batch_size"].default)
    assert (c.chunk_rows, c.encoding) == (stream["chunk_rows"].default, stream["encoding"].default)
    assert c.event_timestamp is None and c.progress and isinstance(c.bundle, Path)


def test_event_timestamp_is_parsed_naive_as_utc_and_bad_values_name_the_flag() -> None:
    assert _config(event_timestamp="2026-01-01T00:00:00").event_timestamp == dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    aware = _config(event_timestamp="2026-01-01T00:00:00+02:00").event_timestamp
    assert aware.utcoffset() == dt.timedelta(hours=2)
    with pytest.raises(ValueError, match=r"--event-timestamp 'yesterday' is not an ISO timestamp"):
        _config(event_timestamp="yesterday")


def test_pin_feedback_needs_a_query_bundle_and_valid_settings() -> None:
    assert _config(pin_feedback="p.parquet", prf_k=3).pin_feedback == Path("p.parquet")
    _config(kind="pin", prf_k=0)  # without --pin-feedback the settings are unused, as before
    with pytest.raises(ValueError, match="needs --kind query"):
        _config(kind="pin", pin_feedback="p.parquet")
    with pytest.raises(ValueError, match="--prf-k/--prf-weight"):
        _config(pin_feedback="p.parquet", prf_weight=-1.0)
