"""Shared fixtures: a tiny random BERT (no downloads) and a real redis-server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

TINY_WORDS = (
    "the a of and for with to in on red blue green black white steel wood oak pine brass copper "
    "chair table lamp door window floor tile paint brush drill saw hammer nail screw bolt bracket "
    "angle shelf cabinet sink faucet toilet shower light bulb led fan heater grill hose garden "
    "outdoor indoor kitchen bath bathroom wall ceiling rug mat storage box bin hook rack small large"
).split()


def build_tiny_bert(directory: Path, hidden: int = 32, layers: int = 2) -> Path:
    """Write a random 2-layer BERT (hidden 32) and a WordPiece tokenizer into ``directory``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    letters = list("abcdefghijklmnopqrstuvwxyz0123456789")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS, *letters, *[f"##{c}" for c in letters]]
    vocab = list(dict.fromkeys(vocab))
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=64,
    )
    fast.save_pretrained(directory)
    cfg = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=hidden * 2, max_position_embeddings=64,
    )
    import torch

    torch.manual_seed(0)
    BertModel(cfg).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local transformers directory holding a tiny random BERT and its tokenizer."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def redis_server() -> Iterator[object]:
    """A real redis-server on 127.0.0.1 (free port) for the whole session; flushed per test by users."""
    from encoders.featurestore.redis_server import LocalRedis

    with LocalRedis() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_onnx_bundle(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle (``query/`` + ``pin/``) exported from an untrained tiny tower: ``(N, 32)`` embeddings."""
    from encoders.export.bundle import ExportOptions, export_bundle
    from encoders.model.tower import QueryTower, TowerConfig

    run = tmp_path_factory.mktemp("tiny-run")
    QueryTower(TowerConfig(str(tiny_bert_dir), max_length=16)).save(run)
    (run / "eval_report.json").write_text('{"recall@10": 0.5}')
    out = tmp_path_factory.mktemp("tiny-bundle")
    export_bundle(out, run, options=ExportOptions(progress=False))
    return out
