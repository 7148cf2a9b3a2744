"""Frozen pin embeddings with the tiny random BERT: shape, unit norm, order, cache, user embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from encoders.data.pin_embeddings import embed_pins, embed_texts, read_pin_embeddings
from encoders.data.schema import write_table

TEXTS = ["red oak chair", "blue steel table with a large brass lamp for the kitchen", "lamp", "white door"]


def make_pins(root: Path, texts: list[str] = TEXTS) -> Path:
    write_table(pa.table({"pin_id": [f"p{i}" for i in range(len(texts))], "text": texts}), root / "pins.parquet",
                "pins")
    return root


def test_embed_unit_norm_dim_and_cache(tmp_path: Path, tiny_bert_dir: Path, capsys: pytest.CaptureFixture) -> None:
    root = make_pins(tmp_path)
    embed_pins(root, tiny_bert_dir, batch_size=2, threads=1, progress=False)
    ids, emb = read_pin_embeddings(root)
    assert ids == ["p0", "p1", "p2", "p3"] and emb.shape == (4, 32) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    info = json.loads((root / "pin_tower.json").read_text())
    assert info["dim"] == 32 and info["n_pins"] == 4 and info["pooling"] == "mean" and info["normalize"]
    assert info["base_model"] == str(tiny_bert_dir) and info["source"] == "computed"
    before = (root / "pins.parquet").stat().st_mtime_ns
    capsys.readouterr()
    embed_pins(root, tiny_bert_dir, threads=1, progress=False)
    assert "cached" in capsys.readouterr().out
    assert (root / "pins.parquet").stat().st_mtime_ns == before


def test_length_sorted_batches_keep_input_order(tmp_path: Path, tiny_bert_dir: Path) -> None:
    from transformers import AutoModel

    from encoders.model.tower import load_tokenizer

    model, tok = AutoModel.from_pretrained(str(tiny_bert_dir)), load_tokenizer(tiny_bert_dir)
    batched = embed_texts(model, tok, TEXTS, batch_size=2, progress=False)
    single = np.stack([embed_texts(model, tok, [t], progress=False)[0] for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_text_change_recomputes(tmp_path: Path, tiny_bert_dir: Path) -> None:
    root = make_pins(tmp_path)
    embed_pins(root, tiny_bert_dir, threads=1, progress=False)
    _, old = read_pin_embeddings(root)
    make_pins(root, [*TEXTS[:3], "green garden hose"])  # rewrites pins.parquet without embeddings
    embed_pins(root, tiny_bert_dir, threads=1, progress=False)
    _, new = read_pin_embeddings(root)
    np.testing.assert_allclose(new[:3], old[:3], atol=1e-5)
    assert not np.allclose(new[3], old[3])
    # same texts but a stale hash in pin_tower.json (texts edited in place) → recomputed too
    info = json.loads((root / "pin_tower.json").read_text())
    info["text_hash"] = "stale"
    (root / "pin_tower.json").write_text(json.dumps(info))
    embed_pins(root, tiny_bert_dir, threads=1, progress=False)
    assert json.loads((root / "pin_tower.json").read_text())["text_hash"] != "stale"


def test_user_embeddings_are_kept(tmp_path: Path, tiny_bert_dir: Path) -> None:
    user = np.eye(4, 7, dtype=np.float32)
    table = pa.table({"pin_id": ["a", "b", "c", "d"], "text": TEXTS,
                      "embedding": pa.array(user.tolist(), pa.list_(pa.float32()))})
    write_table(table, tmp_path / "pins.parquet", "pins")
    embed_pins(tmp_path, tiny_bert_dir, progress=False)
    _, emb = read_pin_embeddings(tmp_path)
    np.testing.assert_array_equal(emb, user)
    assert json.loads((tmp_path / "pin_tower.json").read_text())["source"] == "user"
    embed_pins(tmp_path, tiny_bert_dir, force=True, threads=1, progress=False)
    assert pq.read_table(tmp_path / "pins.parquet").column("embedding").type == pa.list_(pa.float32())
    assert read_pin_embeddings(tmp_path)[1].shape == (4, 32)
