"""``pins embed`` on the ONNX runtime: same vectors as torch within the export's gates, int8 admitted
or refused by its gate, the export cached (outside the package, git-ignored) and reused without torch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.cli.main import main
from encoders.data.pin_embeddings import ONNX_CACHE_DIR, PinEmbedError, embed_pins, read_pin_embeddings
from encoders.data.schema import write_table
from encoders.export.config import ParityThresholds
from encoders.export.parity import row_cosine
from encoders.export.pin_cache import cache_key, sample_texts

TEXTS = [
    "red oak chair", "blue steel table with a large brass lamp for the kitchen", "lamp", "white door",
    "LED light bulb 60w", "cordless drill 18v with 2 batteries", "Outdoor   CEILING fan", "copper pipe 3/4 in.",
    "Wasserhahn Küche", "çekiç", "garden hose 50 ft", "pine shelf bracket", "storage bin with lid",
    "wood screws #8 x 1-1/4", "bathroom vanity with sink top in white marble", "rug", "",
    "very long title " + " ".join(f"word{i}" for i in range(120)),  # truncated at max_length
]


def make_pins(root: Path, texts: list[str] = TEXTS) -> Path:
    write_table(pa.table({"pin_id": [f"p{i}" for i in range(len(texts))], "text": texts}), root / "pins.parquet",
                "pins")
    return root


def embed(root: Path, bert: Path, runtime: str, **kw: object) -> np.ndarray:
    embed_pins(root, bert, threads=1, progress=False, runtime=runtime, **kw)  # type: ignore[arg-type]
    return read_pin_embeddings(root)[1]


def info(root: Path) -> dict:
    return json.loads((root / "pin_tower.json").read_text())


def test_onnx_fp32_gives_the_torch_vectors_within_the_fp32_gate(tmp_path: Path, tiny_bert_dir: Path) -> None:
    torch_dir, onnx_dir = make_pins(tmp_path / "t"), make_pins(tmp_path / "o")
    ref = embed(torch_dir, tiny_bert_dir, "torch")
    got = embed(onnx_dir, tiny_bert_dir, "onnx-fp32")
    gate = ParityThresholds().fp32_max_abs
    assert got.shape == ref.shape == (len(TEXTS), 32)
    assert np.abs(got - ref).max() <= gate
    assert row_cosine(got, ref).min() >= 1 - 1e-6
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    i = info(onnx_dir)
    assert i["runtime"] == "onnx-fp32" and info(torch_dir)["runtime"] == "torch"
    assert i["onnx"]["exported"] and i["onnx"]["fp32_max_abs_diff"] <= gate
    assert i["onnx"]["model_version"].startswith("pin-") and "+int8" not in i["onnx"]["model_version"]
    # the export sits beside the dataset, behind a .gitignore that ignores everything in it
    cache = onnx_dir / ONNX_CACHE_DIR
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    assert Path(i["onnx"]["directory"]).parent == cache.resolve()
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "manifest.json"} <= {
        f.name for f in Path(i["onnx"]["directory"]).iterdir()}


def test_onnx_int8_stays_within_its_gate_of_the_torch_vectors(tmp_path: Path, tiny_bert_dir: Path) -> None:
    ref = embed(make_pins(tmp_path / "t"), tiny_bert_dir, "torch")
    root = make_pins(tmp_path / "o")
    got = embed(root, tiny_bert_dir, "onnx-int8")
    gate = ParityThresholds()
    cos = row_cosine(got, ref)
    assert cos.mean() >= gate.int8_cos_mean and cos.min() >= gate.int8_cos_min
    assert not np.allclose(got, ref, atol=1e-7)  # it really ran the int8 graph
    i = info(root)
    assert i["runtime"] == "onnx-int8" and i["onnx"]["model_version"].endswith("+int8")
    assert i["onnx"]["int8_sample"]["n"] == len(TEXTS) and i["onnx"]["int8_sample"]["cos_min"] >= gate.int8_cos_min


def test_int8_is_refused_with_a_clear_message_when_its_gate_fails(tmp_path: Path, tiny_bert_dir: Path) -> None:
    root = make_pins(tmp_path)
    strict = ParityThresholds(int8_cos_min=0.9999999)
    with pytest.raises(PinEmbedError, match=r"onnx-int8 refused.*int8 min cosine.*--runtime onnx-fp32"):
        embed_pins(root, tiny_bert_dir, threads=1, progress=False, runtime="onnx-int8", thresholds=strict)
    assert "embedding" not in pq.read_table(root / "pins.parquet").column_names  # nothing written
    assert not (root / "pin_tower.json").exists()
    # the export is kept: fp32 is still admitted from it, without exporting again
    embed_pins(root, tiny_bert_dir, threads=1, progress=False, runtime="onnx-fp32", thresholds=strict)
    assert info(root)["onnx"]["exported"] is False


def test_int8_is_refused_when_it_drifts_on_these_pins(tmp_path: Path, tiny_bert_dir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The check set passes but the dataset's own sample does not: refused, figures named."""
    import encoders.export.pin_cache as pin_cache

    root = make_pins(tmp_path)
    real = pin_cache.sample_agreement
    seen: dict[str, float] = {}

    def drifting(reference, candidate, texts):  # the real figures, then a drift on one pin
        seen.update(real(reference, candidate, texts))
        assert reference.variant == "fp32" and candidate.variant == "int8"
        return {**seen, "cos_min": 0.5}

    monkeypatch.setattr(pin_cache, "sample_agreement", drifting)
    with pytest.raises(PinEmbedError, match=rf"cosine on {len(TEXTS)} of these pins: min 0.5000 < 0.97"):
        embed_pins(root, tiny_bert_dir, threads=1, progress=False, runtime="onnx-int8")
    assert seen["n"] == len(TEXTS) and seen["cos_min"] >= ParityThresholds().int8_cos_min
    assert not (root / "pin_tower.json").exists()


def test_fp32_is_refused_when_the_graph_misses_the_fp32_gate(tmp_path: Path, tiny_bert_dir: Path,
                                                             capsys: pytest.CaptureFixture) -> None:
    root = make_pins(tmp_path)
    argv = ["pins", "embed", str(root), "--base-model", str(tiny_bert_dir), "--threads", "1", "--no-progress"]
    assert main([*argv, "--fp32-max-abs", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchsage: error: --runtime onnx-fp32 refused") and "fp32 max |onnx - torch|" in err
    assert "--runtime torch" in err and "Traceback" not in err
    assert main([*argv, "--runtime", "torch"]) == 0
    assert info(root)["runtime"] == "torch"


def test_cache_rules_across_runtimes(tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture) -> None:
    root, cache = make_pins(tmp_path / "ds"), tmp_path / "cache"
    embed(root, tiny_bert_dir, "torch")
    capsys.readouterr()
    embed(root, tiny_bert_dir, "onnx-fp32", onnx_cache=cache)  # torch vectors stand for fp32 ones
    assert "cached" in capsys.readouterr().out and not cache.exists()
    int8 = embed(root, tiny_bert_dir, "onnx-int8", onnx_cache=cache)  # but not for int8 ones
    assert info(root)["runtime"] == "onnx-int8" and info(root)["onnx"]["exported"]
    assert [p.name for p in cache.iterdir() if p.is_dir()] == [cache_key(tiny_bert_dir, 64)]
    capsys.readouterr()
    embed(root, tiny_bert_dir, "onnx-int8", onnx_cache=cache)
    assert "cached" in capsys.readouterr().out
    fp32 = embed(root, tiny_bert_dir, "onnx-fp32", onnx_cache=cache)  # int8 vectors do not stand for fp32
    assert info(root)["runtime"] == "onnx-fp32" and info(root)["onnx"]["exported"] is False
    assert not np.array_equal(int8, fp32)
    # another max_length is another export
    embed(root, tiny_bert_dir, "onnx-fp32", onnx_cache=cache, max_length=16)
    assert len([p for p in cache.iterdir() if p.is_dir()]) == 2


def test_an_incomplete_export_is_made_again(tmp_path: Path, tiny_bert_dir: Path) -> None:
    root = make_pins(tmp_path)
    want = embed(root, tiny_bert_dir, "onnx-int8")
    tower = Path(info(root)["onnx"]["directory"])
    (tower / "model.int8.onnx").unlink()  # e.g. a cleaned-up or half-copied cache
    got = embed(root, tiny_bert_dir, "onnx-int8", force=True)
    assert info(root)["onnx"]["exported"] is True and (tower / "model.int8.onnx").is_file()
    np.testing.assert_allclose(got, want, atol=1e-6)  # the same recipe gives the same vectors
    assert sorted(p.name for p in tower.parent.iterdir()) == sorted([".gitignore", tower.name])  # no tmp left


def test_cache_key_follows_the_weights_bytes_not_the_path(tmp_path: Path, tiny_bert_dir: Path) -> None:
    copy = Path(shutil.copytree(tiny_bert_dir, tmp_path / "copy"))
    assert cache_key(copy, 64) == cache_key(tiny_bert_dir, 64) != cache_key(tiny_bert_dir, 32)
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # same config, same size, other weights (a fine-tuned copy)
    weights.write_bytes(bytes(data))
    assert cache_key(copy, 64) != cache_key(tiny_bert_dir, 64)


def test_a_cache_hit_runs_without_torch(tmp_path: Path, tiny_bert_dir: Path) -> None:
    root = make_pins(tmp_path)
    want = embed(root, tiny_bert_dir, "onnx-fp32")  # exports (with torch) into the cache
    code = ("import sys; from encoders.data.pin_embeddings import embed_pins; "
            f"embed_pins({str(root)!r}, {str(tiny_bert_dir)!r}, force=True, threads=1, progress=False); "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    np.testing.assert_array_equal(read_pin_embeddings(root)[1], want)
    assert info(root)["onnx"]["exported"] is False


def test_sample_spans_short_to_long() -> None:
    texts = [f"t{'x' * i}" for i in range(1000)][::-1]
    sample = sample_texts(texts, 10)
    assert len(sample) == 10 and min(sample, key=len) == "t" and max(sample, key=len) == texts[0]
    assert sample_texts(texts[:5], 10) == texts[:5]
