from __future__ import annotations

from pathlib import Path

import torch

from encoders.model.tower import QueryTower, TowerConfig, embed_in_length_buckets, load_tokenizer

TEXTS = ["a", "red chair with a very long description of the chair and its legs", "lamp", "oak table top",
         "white door", "steel shelf bracket for a wall", "x"]


def test_length_buckets_equal_one_padded_batch_in_input_order(tiny_bert_dir: Path) -> None:
    tower = QueryTower(TowerConfig(str(tiny_bert_dir), max_length=16)).eval()
    tok = load_tokenizer(tiny_bert_dir)
    enc = tok(TEXTS, padding=True, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        ref = tower(enc["input_ids"], enc["attention_mask"])
        for buckets in (1, 3, 7, 20):
            out = embed_in_length_buckets(tower, tok, TEXTS, 16, buckets)
            assert out.shape == ref.shape
            assert torch.allclose(out, ref, atol=1e-5), buckets


def test_length_buckets_keep_the_graph(tiny_bert_dir: Path) -> None:
    tower = QueryTower(TowerConfig(str(tiny_bert_dir), max_length=16)).train()
    out = embed_in_length_buckets(tower, load_tokenizer(tiny_bert_dir), TEXTS, 16, 3)
    out[1].sum().backward()
    assert tower.readout.weight.grad is not None and tower.readout.weight.grad.abs().sum() > 0
