"""The Home Depot importer on a small latin-1 fixture written by the test (the real file is never copied)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from encoders.data.homedepot import HomeDepotFormatError, import_homedepot, read_stats
from encoders.data.schema import DataValidationError

HEADER = '"id","product_uid","product_title","search_term","relevance"\n'
ROWS = [
    (2, 100001, "Simpson Strong-Tie 12-Gauge Angle", "angle bracket", "3"),
    (3, 100001, "Simpson Strong-Tie 12-Gauge Angle", "L  Bracket ", "2.5"),
    (9, 100002, "BEHR Premium Textured DeckOver 1-gal. Tugboat", "deck over", "2.67"),
    (16, 100005, "Delta Vero 1-Handle Shower Faucet Trim Kit in Chrome", "rain shower head", "2.33"),
    (17, 100005, "Delta Vero 1-Handle Shower Faucet Trim Kit in Chrome", "SHOWER only faucet", "2.67"),
    (18, 100006, "Whirlpool 1.9 cu. ft. Microwave in Stainless \xe5 Steel", "microwave over stove", "3"),
    (20, 100006, "Whirlpool 1.9 cu. ft. Microwave in Stainless \xe5 Steel", "Microwave Over  Stove", "2.33"),
    (21, 100007, "Lithonia Lighting Quantum 2-Light Black LED Emergency Fixture", "emergency light", "1"),
]


def write_csv(path: Path, rows: list[tuple], header: str = HEADER) -> Path:
    lines = [header] + [f'{i},{uid},"{title}","{q}",{rel}\n' for i, uid, title, q, rel in rows]
    path.write_bytes("".join(lines).encode("latin-1"))
    return path


def test_import_counts_normalisation_and_threshold(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "train.csv", ROWS)
    assert b"\xe5" in csv.read_bytes()  # really latin-1, not utf-8
    paths = import_homedepot(csv, tmp_path / "ds")
    pins = pq.read_table(paths.pins).to_pydict()
    eng = pq.read_table(paths.engagements).to_pydict()
    judg = pq.read_table(paths.judgments).to_pydict()
    assert pins["pin_id"] == ["100001", "100002", "100005", "100006", "100007"]
    assert pins["text"][3] == "Whirlpool 1.9 cu. ft. Microwave in Stainless å Steel"
    # relevance >= 2.67 → engagement: rows 2, 9, 17, 18 (2.5 and 2.33 are not)
    assert sorted(zip(eng["query"], eng["pin_id"], strict=True)) == [
        ("angle bracket", "100001"), ("deck over", "100002"),
        ("microwave over stove", "100006"), ("shower only faucet", "100005"),
    ]
    assert set(eng["task"]) == {"shopping"} and set(eng["action"]) == {"long_click"}
    # timestamps: epoch + id seconds, deterministic
    assert eng["timestamp"][0].timestamp() == pytest.approx(1451606400 + 2)
    # all pairs judged; the two spellings of "microwave over stove" merge into one judgment (mean grade)
    assert "l bracket" in judg["query"]
    assert len(judg["query"]) == len(ROWS) - 1
    merged = [g for q, p, g in zip(judg["query"], judg["pin_id"], judg["grade"], strict=True)
              if q == "microwave over stove"]
    assert merged == [pytest.approx((3 + 2.33) / 2)]
    stats = read_stats(paths.root)
    assert (stats["pins"], stats["engagements"], stats["judgments"], stats["distinct_queries"]) == (5, 4, 7, 7)


def test_threshold_is_configurable(tmp_path: Path) -> None:
    paths = import_homedepot(write_csv(tmp_path / "t.csv", ROWS), tmp_path / "ds", positive_threshold=2.33)
    assert pq.read_table(paths.engagements).num_rows == 7


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match="file not found"):
        import_homedepot(tmp_path / "nope.csv", tmp_path / "ds")


def test_missing_column_is_named(tmp_path: Path) -> None:
    header = '"id","product_uid","product_title","query","relevance"\n'
    with pytest.raises(HomeDepotFormatError, match="'search_term'") as err:
        import_homedepot(write_csv(tmp_path / "t.csv", ROWS, header), tmp_path / "ds")
    assert err.value.column == "search_term"


def test_non_numeric_relevance_names_row_and_column(tmp_path: Path) -> None:
    rows = [*ROWS[:5], (18, 100006, "Whirlpool Microwave", "microwave", "high"), *ROWS[6:]]
    with pytest.raises(HomeDepotFormatError, match=r"column 'relevance', row 6.*'high'") as err:
        import_homedepot(write_csv(tmp_path / "t.csv", rows), tmp_path / "ds", chunksize=4)
    assert err.value.row == 6  # 1-based data row, counted across chunks


def test_relevance_out_of_range_and_empty_query(tmp_path: Path) -> None:
    with pytest.raises(HomeDepotFormatError, match=r"row 2.*between 1 and 3"):
        import_homedepot(write_csv(tmp_path / "a.csv", [ROWS[0], (3, 100001, "x", "y", "7")]), tmp_path / "a")
    with pytest.raises(HomeDepotFormatError, match="column 'search_term', row 1"):
        import_homedepot(write_csv(tmp_path / "b.csv", [(2, 100001, "x", " ", "3")]), tmp_path / "b")


def test_wrong_encoding_is_explained(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "t.csv", ROWS)
    with pytest.raises(HomeDepotFormatError, match=r"cannot be decoded as utf-8.*0xE5.*latin-1"):
        import_homedepot(csv, tmp_path / "ds", encoding="utf-8")
