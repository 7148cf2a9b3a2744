"""bench/train_seed_table.py on hand-made records: golden values, and a clear error for an unknown variant."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("train_seed_table_bench", ROOT / "bench" / "train_seed_table.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up here
    spec.loader.exec_module(mod)
    return mod


RECORDS = [
    {"name": "x-base-s0-val", "recall@10": 0.40},
    {"name": "x-base-s1-val", "recall@10": 0.42},
    {"name": "x-base-s2-val", "recall@10": 0.41},
    {"name": "x-new-s0-val", "recall@10": 0.41},
    {"name": "x-new-s1-val", "recall@10": 0.44},
    {"name": "x-new-s2-val", "recall@10": 0.41},
    {"name": "x-new-s2-val", "recall@10": 0.42},  # a re-run replaces the earlier record
    {"name": "x-base-s0-eval", "recall@10": 0.5},
    {"name": "x-new-s0-eval", "recall@10": 0.6},
    {"name": "y-base-s0-val", "recall@10": 0.9},  # another prefix
    {"name": "x-new-s3-val"},  # no metric
]


def test_seed_table_golden_values() -> None:
    t = _bench()
    table = t.collect(RECORDS, "x", "recall@10")
    assert table[("new", "val")] == {0: 0.41, 1: 0.44, 2: 0.42} and table[("base", "val")][0] == 0.40
    rows = {(r.variant, r.split): r for r in t.build_rows(table, ["base", "new"], "base")}
    new = rows[("new", "val")]
    assert new.mean == pytest.approx(0.42333333) and new.sd == pytest.approx(math.sqrt(0.000233333), rel=1e-5)
    # seed differences 0.01, 0.02, 0.01: mean 0.013333, sd 0.0057735, t(0.975, 2) = 4.302653
    half = 4.302653 * 0.0057735 / math.sqrt(3)
    assert new.delta == pytest.approx((0.0133333, 0.0133333 - half, 0.0133333 + half), abs=1e-5)
    assert new.delta_seeds == 3
    assert rows[("new", "eval")].delta is None  # one common seed: no interval
    md = t.to_markdown(list(rows.values()), "recall@10", "base")
    assert "| new | val | s0 0.4100, s1 0.4400, s2 0.4200 | 0.4233 ± 0.0153 | +0.0133 [" in md


def test_unknown_variant_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = _bench()
    results = tmp_path / "r.jsonl"
    results.write_text("\n".join(json.dumps(r) for r in RECORDS))
    with pytest.raises(SystemExit) as exc:
        t.main(["--results", str(results), "--prefix", "x", "--variants", "base,nope", "--reference", "base"])
    assert exc.value.code == 2
    assert "no runs of variant 'nope'" in capsys.readouterr().err
