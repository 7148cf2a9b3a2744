"""Streaming encode of multi-chunk parquet/CSV files into a Feast offline source, and the CLI."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.cli.main import main
from encoders.runtime import BundleEncoder
from encoders.runtime.stream import EncodeInputError, encode_file, output_schema

WORDS = ("red", "blue", "oak", "pine", "chair", "table", "lamp", "door", "tile", "paint", "drill", "saw", "hook",
         "rack", "sink", "faucet")


def _pins(n: int) -> pa.Table:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(1, 12)))) for _ in range(n)]
    return pa.table({"pin_id": [f"p{i:05d}" for i in range(n)], "text": texts, "other": list(range(n))})


def test_pin_parquet_multi_chunk(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    src = tmp_path / "pins.parquet"
    pins = _pins(230)
    pq.write_table(pins, src, row_group_size=50)  # row groups and chunks deliberately misaligned
    enc = BundleEncoder(tiny_onnx_bundle, kind="pin", batch_size=32)
    ts = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    res = encode_file(enc, src, tmp_path / "out.parquet", chunk_rows=64, event_timestamp=ts, progress=False)
    assert (res.rows_in, res.rows_out, res.chunks) == (230, 230, 4)
    f = pq.ParquetFile(res.out)
    assert f.metadata.num_row_groups == 4
    assert f.schema_arrow == output_schema("pin_id")
    out = f.read()
    assert out.column("pin_id").to_pylist() == pins.column("pin_id").to_pylist()
    emb = np.asarray(out.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(emb, enc.encode(pins.column("text").to_pylist()), atol=1e-5)
    assert set(out.column("model_version").to_pylist()) == {enc.model_version}
    assert out.column("event_timestamp")[0].as_py() == ts
    assert not (tmp_path / "out.parquet.tmp").exists()


def test_query_csv_latin1_normalises_dedupes_and_skips_empty(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    src = tmp_path / "queries.csv"
    rows = ["search_term", "Angle Bracket", "angle  bracket", "  ", "café table", "\"oak, pine\""] + [
        f"lamp {i}" for i in range(40)]
    src.write_bytes(("\n".join(rows) + "\n").encode("latin-1"))
    enc = BundleEncoder(tiny_onnx_bundle)
    res = encode_file(enc, src, tmp_path / "q.parquet", column="search_term", chunk_rows=16,
                      encoding="latin-1", progress=False)
    out = pq.read_table(res.out)
    keys = out.column("query").to_pylist()
    assert keys[:3] == ["angle bracket", "café table", "oak, pine"]
    assert res.rows_in == 45 and res.rows_skipped == 2 and res.rows_out == len(keys) == 43
    assert res.chunks == 3
    emb = np.asarray(out.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(emb[0], enc.encode(["ANGLE bracket"])[0], atol=1e-5)


def test_null_text_names_row_and_missing_column(tiny_onnx_bundle: Path, tmp_path: Path) -> None:
    src = tmp_path / "q.parquet"
    pq.write_table(pa.table({"query": ["a", "b", "c", None, "e"]}), src)
    enc = BundleEncoder(tiny_onnx_bundle)
    with pytest.raises(EncodeInputError, match="null at row 3"):
        encode_file(enc, src, tmp_path / "o.parquet", chunk_rows=2, progress=False)
    assert not (tmp_path / "o.parquet").exists() and not (tmp_path / "o.parquet.tmp").exists()
    with pytest.raises(EncodeInputError, match=r"no column\(s\) \['title'\]"):
        encode_file(enc, src, tmp_path / "o.parquet", column="title", progress=False)


def test_cli_encode_and_errors(tiny_onnx_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = tmp_path / "pins.parquet"
    pq.write_table(_pins(20), src)
    out = tmp_path / "pins_emb.parquet"
    rc = main(["encode", "--bundle", str(tiny_onnx_bundle), "--kind", "pin", "--input", str(src),
               "--out", str(out), "--chunk-rows", "8", "--no-progress", "--event-timestamp", "2026-01-01T00:00:00"])
    assert rc == 0 and pq.read_metadata(out).num_rows == 20
    assert '"chunks": 3' in capsys.readouterr().out
    rc = main(["encode", "--bundle", str(tiny_onnx_bundle), "--kind", "pin", "--input", str(src),
               "--out", str(out), "--expect-dim", "384", "--no-progress"])
    assert rc == 2 and "expected D=384" in capsys.readouterr().err
    rc = main(["encode", "--bundle", str(tiny_onnx_bundle), "--kind", "query", "--input", str(tmp_path / "nope.csv"),
               "--out", str(out), "--no-progress"])
    assert rc == 2 and "nope.csv not found" in capsys.readouterr().err
    rc = main(["export", "--out", str(tmp_path / "b")])
    assert rc == 2 and "--run" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["export", "encode"])
def test_cli_help(command: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert f"usage: searchsage {command}" in capsys.readouterr().out


def _pin_table(path: Path, n: int, dim: int | None) -> Path:
    """A ``pins.parquet`` (dataset schema) with random ``dim``-d embeddings, or none for ``dim=None``."""
    from encoders.data.schema import PINS, write_table

    cols: dict[str, object] = {"pin_id": [f"p{i}" for i in range(n)], "text": [f"pin {i}" for i in range(n)]}
    if dim is not None:
        emb = np.random.default_rng(3).normal(size=(n, dim)).astype(np.float32)
        cols["embedding"] = pa.array([r.tolist() for r in emb], pa.list_(pa.float32()))
    write_table(pa.table(cols), path, PINS)
    return path


def test_query_encode_with_pin_feedback(tiny_onnx_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from encoders.data.schema import pin_embedding_matrix, read_table
    from encoders.runtime.pin_feedback import PinFeedback, PinFeedbackIndex

    enc = BundleEncoder(tiny_onnx_bundle)
    pins_path = _pin_table(tmp_path / "pins.parquet", 120, enc.dim)
    pins = pin_embedding_matrix(read_table(pins_path, "pins"))
    src = tmp_path / "q.parquet"
    pq.write_table(pa.table({"query": [f"{a} {b}" for a in WORDS[:6] for b in WORDS[6:12]]}), src)
    index = PinFeedbackIndex(PinFeedback(k=3, weight=0.5), pins)
    res = encode_file(enc, src, tmp_path / "out.parquet", chunk_rows=10, progress=False, feedback=index)
    out = pq.read_table(res.out)
    emb = np.asarray(out.column("embedding").to_pylist(), dtype=np.float32)
    plain = enc.encode(out.column("query").to_pylist())
    np.testing.assert_allclose(emb, PinFeedback(k=3, weight=0.5).apply(plain, pins), atol=1e-5)
    assert np.abs(emb - plain / np.linalg.norm(plain, axis=1, keepdims=True)).max() > 1e-3  # really refined
    assert res.model_version == f"{enc.model_version}+{index.version_tag}"
    assert set(out.column("model_version").to_pylist()) == {res.model_version}

    base = ["encode", "--bundle", str(tiny_onnx_bundle), "--input", str(src), "--out", str(tmp_path / "o.parquet"),
            "--no-progress"]
    assert main([*base, "--kind", "query", "--pin-feedback", str(pins_path), "--prf-k", "3", "--prf-weight", "0.5"]) == 0
    again = np.asarray(pq.read_table(tmp_path / "o.parquet").column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(again, emb, atol=1e-5)
    capsys.readouterr()
    assert main([*base, "--kind", "pin", "--pin-feedback", str(pins_path)]) == 2
    assert "needs --kind query" in capsys.readouterr().err
    assert main([*base, "--kind", "query", "--pin-feedback", str(pins_path), "--prf-k", "0"]) == 2
    assert "--prf-k/--prf-weight" in capsys.readouterr().err
    no_emb = _pin_table(tmp_path / "noemb.parquet", 5, None)
    assert main([*base, "--kind", "query", "--pin-feedback", str(no_emb)]) == 2
    assert f"--pin-feedback {no_emb}: pins table has no 'embedding' column" in capsys.readouterr().err
    wrong = _pin_table(tmp_path / "wrong.parquet", 5, enc.dim + 1)
    assert main([*base, "--kind", "query", "--pin-feedback", str(wrong)]) == 2
    assert f"is {enc.dim + 1}-d but the bundle encodes {enc.dim}-d" in capsys.readouterr().err
