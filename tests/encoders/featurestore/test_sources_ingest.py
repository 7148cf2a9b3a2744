"""``searchsage feast ingest``: a user's pins/queries (parquet or CSV) merged into the offline sources,
idempotently, their own vectors kept bit for bit, bad input refused in one line naming file/column/row."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.cli.main import main
from encoders.featurestore.sources import IngestError, PinColumns, ingest_pins, ingest_queries


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "feature_repo"
    r.mkdir()
    (r / "feature_store.yaml").write_text("project: t\n")
    return r


def _pins_file(path: Path, vecs: np.ndarray | None, texts: list[str], ids: list[str] | None = None) -> Path:
    ids = ids or [f"p{i}" for i in range(len(texts))]
    cols: dict[str, pa.Array] = {"pin_id": pa.array(ids), "text": pa.array(texts)}
    if vecs is not None:
        cols["embedding"] = pa.array(list(vecs), pa.list_(pa.float32()))
    pq.write_table(pa.table(cols), path)
    return path


def test_pins_with_own_vectors_are_kept_bit_for_bit_and_reingest_is_a_no_op(repo: Path, tmp_path: Path) -> None:
    vecs = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    vecs[0, 0] = -0.0
    src = _pins_file(tmp_path / "pins.parquet", vecs, ["a", "b", "c", "d"])
    rep = ingest_pins(repo, src, dim=8)
    assert (rep.new, rep.changed, rep.unchanged, rep.with_vectors) == (4, 0, 0, 4)
    out = pq.read_table(repo / "data" / "pins.parquet")
    assert out.schema.field("embedding").type == pa.list_(pa.float32())
    assert str(out.schema.field("event_timestamp").type) == "timestamp[us, tz=UTC]"
    assert np.asarray(out.column("embedding").to_pylist(), dtype=np.float32).tobytes() == vecs.tobytes()
    stamp = out.column("event_timestamp")[0].as_py()
    assert stamp.microsecond == 0 and stamp < datetime.now(timezone.utc)  # whole second, already past
    mtime = (repo / "data" / "pins.parquet").stat().st_mtime_ns

    again = ingest_pins(repo, src, dim=8)
    assert (again.new, again.changed, again.unchanged) == (0, 0, 4)
    assert (repo / "data" / "pins.parquet").stat().st_mtime_ns == mtime  # not even rewritten

    vecs2 = vecs.copy()
    vecs2[2, 3] += 1.0
    ids = ["p0", "p1", "p2", "p3", "p9"]
    rep3 = ingest_pins(repo, _pins_file(tmp_path / "pins2.parquet", np.vstack([vecs2, vecs[:1]]),
                                        ["a", "b", "c", "d", "e"], ids), dim=8)
    assert (rep3.new, rep3.changed, rep3.unchanged) == (1, 1, 3)
    df = pd.read_parquet(repo / "data" / "pins.parquet").set_index("pin_id")
    assert len(df) == 5  # merged by id, never duplicated
    assert np.asarray(df.loc["p2", "embedding"], np.float32).tobytes() == vecs2[2].tobytes()
    assert df.loc["p0", "event_timestamp"] == pd.Timestamp(stamp)  # an unchanged row keeps its event time


def test_csv_pins_mix_vectors_and_text_only_rows(repo: Path, tmp_path: Path) -> None:
    f = tmp_path / "pins.csv"
    f.write_text('sku,title,vec\n1,steel bracket,"[0.5, -0.25, 1e-3]"\n2,oak table,\n3,,0.1 0.2 0.3\n')
    rep = ingest_pins(repo, f, PinColumns(id="sku", text="title", embedding="vec"))
    assert (rep.new, rep.with_vectors) == (3, 2)
    df = pd.read_parquet(repo / "data" / "pins.parquet")
    assert df["pin_id"].tolist() == ["1", "2", "3"] and df["text"].tolist() == ["steel bracket", "oak table", ""]
    assert df["embedding"][1] is None
    np.testing.assert_array_equal(df["embedding"][0], np.float32([0.5, -0.25, 1e-3]))


@pytest.mark.parametrize(("content", "dim", "expected"), [
    ("id,text\n1,a\n", None, r"no column 'pin_id' \(columns: id, text\); name yours with --id-column"),
    ("pin_id,text\n1,a\n,b\n", None, r"column 'pin_id', row 2: empty pin id"),
    ("pin_id,text,embedding\n1,a,[1 2]\n2,b,[1 2 3]\n", None, r"column 'embedding', row 2 \(pin '2'\): 3 values, but "
     r"the file's first vector is 2"),
    ("pin_id,text,embedding\n1,a,[1 2]\n", 4, r"row 1 \(pin '1'\): 2 values, but the feature view's vector_length is 4"),
    ("pin_id,text,embedding\n1,a,[1 nan]\n", None, r"column 'embedding', row 1: NaN or infinite"),
    ("pin_id,text,embedding\n1,a,[1 x]\n", None, r"column 'embedding', row 1: cannot read"),
    ("pin_id,text,embedding\n1,,\n", None, r"row 1 \(pin '1'\): neither 'text' nor 'embedding'"),
])
def test_bad_pin_files_name_file_column_and_row(repo: Path, tmp_path: Path, content: str, dim: int | None,
                                                expected: str) -> None:
    f = tmp_path / "bad.csv"
    f.write_text(content)
    with pytest.raises(IngestError, match=f"file {f}.*{expected}"):
        ingest_pins(repo, f, dim=dim)
    assert not (repo / "data" / "pins.parquet").exists()  # nothing half-written


def test_queries_dedupe_by_entity_key_and_reingest_is_a_no_op(repo: Path, tmp_path: Path) -> None:
    f = tmp_path / "log.parquet"
    pd.DataFrame({"query": ["Red  Chair", "red chair", "oak table", "  ", None]}).to_parquet(f)
    rep = ingest_queries(repo, f)
    assert (rep.new, rep.duplicates, rep.skipped) == (2, 1, 2)
    assert sorted(pd.read_parquet(repo / "data" / "queries.parquet")["query"]) == ["oak table", "red chair"]
    again = ingest_queries(repo, f)
    assert (again.new, again.unchanged) == (0, 2)
    assert len(pd.read_parquet(repo / "data" / "queries.parquet")) == 2


def test_cli_prints_a_summary_and_one_line_errors(repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SEARCHSAGE_BUNDLE", raising=False)
    monkeypatch.delenv("SEARCHSAGE_EMBEDDING_DIM", raising=False)
    pins = _pins_file(tmp_path / "pins.parquet", np.ones((2, 4), np.float32), ["a", "b"])
    (tmp_path / "q.csv").write_text("search_term,ts\nangle bracket,2024-01-02T03:04:05Z\n")
    args = ["feast", "ingest", "--repo", str(repo), "--pins", str(pins), "--queries", str(tmp_path / "q.csv")]
    assert main([*args, "--query-column", "search_term"]) == 0
    out = capsys.readouterr().out
    assert "pins: 2 new, 0 changed, 0 unchanged, 2 with their own embedding" in out and "queries: 1 new" in out
    assert f"feast -c {repo} materialize-incremental" in out
    assert main(args) == 2  # no `query` column in the CSV
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"file {tmp_path / 'q.csv'}: no column 'query'" in err
    assert main(["feast", "ingest", "--repo", str(repo)]) == 2
    assert "give --pins FILE, --queries FILE and/or --homefeed DIR" in capsys.readouterr().err
    assert main(["feast", "ingest", "--repo", str(repo), "--pins", str(tmp_path / "x.json")]) == 2
    assert "no such file" in capsys.readouterr().err
