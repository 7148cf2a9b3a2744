"""Benchmark: stock Feast vs SearchSage fast paths vs raw Redis, for D-dim embedding records.

Starts its own redis-server (``LocalRedis``), builds a throw-away Feast repository with one
``FeatureView`` over a parquet of precomputed embeddings (so the numbers measure the write/read
path, not the encoder), and measures in one run:

* materialisation rows/s, each path under both write semantics of Feast's Redis store so that
  like is compared with like: ``skip_dedup: true`` (last write wins: one ``HSET`` per row) and
  ``skip_dedup: false`` (Feast's default: a row is written only if its event time is newer than the
  stored one; stock reads every stored timestamp then writes, ours runs one atomic compare-and-set
  script per row): ``FeatureStore.materialize`` with the stock local engine + ``type: redis``, the
  same with ``EmbeddingComputeEngine``, ``EmbeddingStore.write`` from numpy, and raw pipelined
  ``HSET`` of the identical pre-encoded bytes (last write wins). Every run writes into an empty
  database; the records ours leaves are checked identical to stock's under each setting;
* fetch latency for 1/100/1000 keys (p50/p99 ms): ``get_online_features(...).to_dict()``,
  ``EmbeddingStore.fetch`` (numpy), and raw pipelined ``HMGET`` (bytes only, no decoding).

    .venv/bin/python bench/feature_store.py            # 50k rows, 384-d
    .venv/bin/python bench/feature_store.py --quick    # small, for tests

Writes ``bench/results/feature_store.json`` and ``.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from encoders.localredis.server import LocalRedis

ENGINE = "encoders.featurestore.engine.EmbeddingComputeEngine"
#: What each ``skip_dedup`` value means for a write.
SEMANTICS = {True: "last write wins (skip_dedup: true)", False: "newer event time wins (skip_dedup: false)"}


@dataclass
class BenchConfig:
    rows: int = 50_000
    dim: int = 384
    fetch_sizes: tuple[int, ...] = (1, 100, 1000)
    repeats: int = 50
    seed: int = 0


@dataclass
class BenchResult:
    config: BenchConfig
    machine: str
    materialize_rows_per_s: dict[str, float] = field(default_factory=dict)
    #: write semantics of each ``materialize_rows_per_s`` row
    semantics: dict[str, str] = field(default_factory=dict)
    fetch_ms: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    #: ours left the same records as stock, per ``skip_dedup`` setting
    record_checks: dict[str, bool] = field(default_factory=dict)


def _yaml(repo: Path, conn: str, engine: str | None, skip_dedup: bool) -> None:
    text = (
        "project: bench\nprovider: local\nregistry: registry.db\nentity_key_serialization_version: 3\n"
        f"online_store:\n  type: redis\n  connection_string: \"{conn}\"\n  skip_dedup: {str(skip_dedup).lower()}\n"
        "offline_store:\n  type: file\nmaterialization:\n  online_write_batch_size: 4096\n"
    )
    if engine:
        text += f"batch_engine:\n  type: {engine}\n  backend: pandas\n"
    (repo / "feature_store.yaml").write_text(text)


def _objects(parquet: Path, dim: int) -> list:
    from feast import Entity, FeatureView, Field, FileSource, ValueType
    from feast.types import Array, Float32, String

    pin = Entity(name="pin", join_keys=["pin_id"], value_type=ValueType.STRING)
    src = FileSource(name="bench_src", path=str(parquet), timestamp_field="event_timestamp")
    fv = FeatureView(
        name="bench_embedding", entities=[pin], ttl=timedelta(days=30), source=src, online=True,
        schema=[Field(name="pin_id", dtype=String), Field(name="embedding", dtype=Array(Float32), vector_length=dim),
                Field(name="model_version", dtype=String)],
    )
    return [pin, src, fv]


def _pct(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50": round(statistics.median(s) * 1e3, 3), "p99": round(s[min(len(s) - 1, int(0.99 * len(s)))] * 1e3, 3)}


def run(cfg: BenchConfig, work: Path) -> BenchResult:
    from feast import FeatureStore
    from tqdm.auto import tqdm

    from encoders.redis_records import codec
    from encoders.redis_records.embeddings import EmbeddingStore

    rng = np.random.default_rng(cfg.seed)
    matrix = rng.standard_normal((cfg.rows, cfg.dim), dtype=np.float32)
    ids = [f"pin-{i}" for i in range(cfg.rows)]
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    parquet = work / "emb.parquet"
    pd.DataFrame({"pin_id": ids, "embedding": list(matrix), "model_version": "bench-v1",
                  "event_timestamp": pd.Series([t0] * cfg.rows, dtype="datetime64[us, UTC]")}).to_parquet(parquet)
    res = BenchResult(cfg, f"{platform.machine()} {platform.processor() or ''} py{platform.python_version()}".strip())
    end = datetime.now(timezone.utc)
    with LocalRedis() as server:
        import redis

        raw = redis.Redis(host=server.host, port=server.port)
        stores: dict[tuple[str, bool], FeatureStore] = {}
        for name, engine in (("stock", None), ("ours", ENGINE)):
            for skip in (True, False):
                repo = work / f"{name}-{'skip' if skip else 'dedup'}"
                repo.mkdir()
                _yaml(repo, server.connection_string, engine, skip)
                stores[(name, skip)] = FeatureStore(repo_path=str(repo))
                stores[(name, skip)].apply(_objects(parquet, cfg.dim))
        for fs_ in stores.values():  # warm-up (imports, registry) on an empty window: not timed
            fs_.materialize(start_date=t0 - timedelta(days=2), end_date=t0 - timedelta(days=1))
        sample = [ids[i] for i in range(0, cfg.rows, max(1, cfg.rows // 200))]
        snapshots: dict[tuple[str, bool], list[dict[bytes, bytes]]] = {}
        for name, skip in tqdm(list(stores), desc="materialise"):
            raw.flushall()
            t = time.perf_counter()
            stores[(name, skip)].materialize(start_date=t0 - timedelta(minutes=1), end_date=end)
            row = f"feast materialize ({name}), {'skip_dedup=true' if skip else 'skip_dedup=false'}"
            res.materialize_rows_per_s[row] = round(cfg.rows / (time.perf_counter() - t))
            res.semantics[row] = SEMANTICS[skip]
            assert raw.dbsize() == cfg.rows, raw.dbsize()
            sample_keys = EmbeddingStore.from_config(stores[(name, skip)].config,
                                                     stores[(name, skip)].get_feature_view("bench_embedding"),
                                                     client=raw).redis_keys(sample)
            snapshots[(name, skip)] = [raw.hgetall(k) for k in sample_keys]
        for skip in (True, False):
            res.record_checks[f"ours == stock records, {SEMANTICS[skip]}"] = \
                snapshots[("ours", skip)] == snapshots[("stock", skip)]
        fs = stores[("stock", False)]
        view = fs.get_feature_view("bench_embedding")
        emb = EmbeddingStore.from_config(fs.config, view)
        # Our write from numpy (same records), then the raw floor: pipelined HSET of identical bytes.
        for skip in (True, False):
            raw.flushall()
            writer = replace(emb, skip_dedup=skip)
            t = time.perf_counter()
            written = writer.write(ids, matrix, "bench-v1", t0)
            row = f"EmbeddingStore.write (numpy), {'skip_dedup=true' if skip else 'skip_dedup=false'}"
            res.materialize_rows_per_s[row] = round(cfg.rows / (time.perf_counter() - t))
            res.semantics[row] = SEMANTICS[skip]
            assert written == cfg.rows, written
        keys = emb.redis_keys(ids)
        values = codec.encode_float_list(matrix)
        mv = codec.encode_string_value("bench-v1")
        ts = codec.encode_timestamp(t0)
        ef, mf, tf = (codec.feature_field("bench_embedding", "embedding"),
                      codec.feature_field("bench_embedding", "model_version"), codec.timestamp_field("bench_embedding"))
        raw.flushall()
        t = time.perf_counter()
        for s in range(0, cfg.rows, 4096):
            with raw.pipeline(transaction=False) as p:
                for k, v in zip(keys[s : s + 4096], values[s : s + 4096], strict=True):
                    p.execute_command("HSET", k, tf, ts, ef, v, mf, mv)
                p.execute()
        res.materialize_rows_per_s["raw pipelined HSET (same bytes)"] = round(cfg.rows / (time.perf_counter() - t))
        res.semantics["raw pipelined HSET (same bytes)"] = SEMANTICS[True]
        # Reads.
        for n in tqdm([n for n in cfg.fetch_sizes if n <= cfg.rows], desc="fetch"):
            sample = [ids[i] for i in rng.choice(cfg.rows, size=n, replace=False)]
            rkeys = emb.redis_keys(sample)
            rows = [{"pin_id": k} for k in sample]
            timings: dict[str, list[float]] = {"get_online_features().to_dict()": [], "EmbeddingStore.fetch": [],
                                               "raw pipelined HMGET": []}
            for _ in range(cfg.repeats):
                t = time.perf_counter()
                d = fs.get_online_features(features=["bench_embedding:embedding"], entity_rows=rows).to_dict()
                timings["get_online_features().to_dict()"].append(time.perf_counter() - t)
                t = time.perf_counter()
                m, found = emb.fetch(sample)
                timings["EmbeddingStore.fetch"].append(time.perf_counter() - t)
                t = time.perf_counter()
                with raw.pipeline(transaction=False) as p:
                    for k in rkeys:
                        p.execute_command("HMGET", k, ef)
                    p.execute()
                timings["raw pipelined HMGET"].append(time.perf_counter() - t)
            stock = np.asarray(d["embedding"], dtype=np.float32)
            res.checks[f"fetch {n}: bit-identical to stock"] = bool(found.all() and stock.tobytes() == m.tobytes())
            res.fetch_ms[str(n)] = {k: _pct(v) for k, v in timings.items()}
        raw.close()
    return res


def to_markdown(res: BenchResult) -> str:
    c = res.config
    lines = [f"# Feature store benchmark ({c.rows:,} rows, D={c.dim}, {res.machine})", "",
             "Each write path runs into an empty database under the write semantics in its row.", "",
             "| materialisation path | write semantics | rows/s |", "|---|---|---:|"]
    lines += [f"| {k} | {res.semantics.get(k, '')} | {v:,.0f} |" for k, v in res.materialize_rows_per_s.items()]
    sizes = [n for n in c.fetch_sizes if str(n) in res.fetch_ms]
    lines += ["", f"| fetch (p50 / p99 ms, {c.repeats} repeats) | " + " | ".join(f"N={n}" for n in sizes) + " |",
              "|---|" + "---:|" * len(sizes)]
    for path in next(iter(res.fetch_ms.values())):
        cells = [f"{res.fetch_ms[str(n)][path]['p50']} / {res.fetch_ms[str(n)][path]['p99']}" for n in sizes]
        lines.append(f"| {path} | " + " | ".join(cells) + " |")
    checks = {**res.record_checks, **res.checks}
    lines += ["", "Checks: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in checks.items()), "",
              "Reproduce: `.venv/bin/python bench/feature_store.py`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 rows, 32-d, 5 repeats (for tests)")
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--dim", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = ap.parse_args(argv)
    cfg = BenchConfig(rows=2000, dim=32, repeats=5) if args.quick else BenchConfig()
    cfg.rows = args.rows or cfg.rows
    cfg.dim = args.dim or cfg.dim
    cfg.repeats = args.repeats or cfg.repeats
    with tempfile.TemporaryDirectory(prefix="ss-bench-fs-") as tmp:
        res = run(cfg, Path(tmp))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "feature_store.json").write_text(json.dumps(asdict(res), indent=2))
    md = to_markdown(res)
    (args.out / "feature_store.md").write_text(md)
    print(md)
    return 0 if all(res.checks.values()) and all(res.record_checks.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
