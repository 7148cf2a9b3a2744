"""Benchmark: ``searchsage rank`` per-query latency with the ANN index built once per pin-embedding version.

Starts its own redis-server, copies ``feature_repo/`` into a temporary directory, ingests the pins
with their own frozen vectors (Home Depot's ``runs/homedepot/pins.parquet``, 54,667 × 384, when it
exists; else a synthetic set, default 50,000 × 384), applies and materialises ``pin_embedding``, and
writes query vectors (noisy copies of random pins) into ``query_embedding``. Then it measures:

* index build (one scan of the online store + faiss HNSW) and loading the persisted index in a new
  :class:`~encoders.ranking.ranker.Ranker`;
* per query, p50/p99 ms of ``Ranker.rank`` (one query-vector fetch, one index search, one candidate
  fetch) and of each of the three steps alone;
* what the previous ranker paid on every call before looking at its index: fetching every pin vector;
* recall@k of the HNSW candidates against exact search.

    .venv/bin/python bench/rank.py                       # Home Depot pins if present, else 50k × 384
    .venv/bin/python bench/rank.py --synthetic --pins 50000 --dim 384
    .venv/bin/python bench/rank.py --quick               # 2,000 × 32, for a smoke run

Writes ``bench/results/rank.json`` and ``rank.md`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
HOMEDEPOT_PINS = ROOT / "runs" / "homedepot" / "pins.parquet"


def _pct(xs: list[float]) -> dict[str, float]:
    a = np.asarray(xs) * 1000
    return {"p50": round(float(np.percentile(a, 50)), 2), "p99": round(float(np.percentile(a, 99)), 2),
            "mean": round(float(a.mean()), 2)}


def _pins(args: argparse.Namespace, work: Path) -> tuple[Path, str]:
    if not args.synthetic and args.pins_file.is_file():
        shown = args.pins_file.resolve()
        shown = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else args.pins_file
        return args.pins_file, f"{shown} (own frozen vectors)"
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((args.pins, args.dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    path = work / "pins.parquet"
    pq.write_table(pa.table({"pin_id": [f"s{i:07d}" for i in range(args.pins)],
                             "text": [f"synthetic pin {i}" for i in range(args.pins)],
                             "embedding": pa.array(list(vecs), pa.list_(pa.float32()))}), path)
    return path, f"synthetic {args.pins} × {args.dim}"


def _apply(repo: Path) -> object:
    from feast import (
        BatchFeatureView,
        Entity,
        FeatureService,
        FeatureStore,
        FileSource,
        OnDemandFeatureView,
        RequestSource,
    )

    spec = importlib.util.spec_from_file_location("bench_rank_definitions", repo / "definitions.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    kinds = (BatchFeatureView, Entity, FeatureService, FileSource, OnDemandFeatureView, RequestSource)
    store = FeatureStore(repo_path=str(repo))
    store.apply([v for v in vars(mod).values() if isinstance(v, kinds)])
    return store


def run(args: argparse.Namespace) -> dict:
    import faiss

    from encoders.featurestore.sources import ingest_pins
    from encoders.localredis.server import LocalRedis
    from encoders.ranking.ranker import Ranker
    from encoders.redis_records.embeddings import EmbeddingStore

    warnings.filterwarnings("ignore", category=RuntimeWarning)
    faiss.omp_set_num_threads(args.threads)
    work = Path(tempfile.mkdtemp(prefix="searchsage-bench-rank-"))
    res: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
                 "k": args.k, "candidates": args.candidates, "queries": args.queries, "threads": args.threads}
    try:
        with LocalRedis() as server:
            os.environ["SEARCHSAGE_REDIS"] = server.connection_string
            os.environ.pop("SEARCHSAGE_BUNDLE", None)
            repo = work / "feature_repo"
            shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
            pins_path, res["pins"] = _pins(args, work)
            dim = pq.read_table(pins_path, columns=["embedding"]).column("embedding")[0].values.__len__()
            os.environ["SEARCHSAGE_EMBEDDING_DIM"] = str(dim)
            t = time.perf_counter()
            ingest_pins(repo, pins_path)
            res["ingest_s"] = round(time.perf_counter() - t, 2)
            store = _apply(repo)
            t = time.perf_counter()
            store.materialize(start_date=datetime.now(timezone.utc) - timedelta(days=1),
                              end_date=datetime.now(timezone.utc) + timedelta(seconds=1),
                              feature_views=["pin_embedding"])
            res["materialize_s"] = round(time.perf_counter() - t, 2)
            table = pq.read_table(repo / "data" / "pins.parquet", columns=["pin_id", "embedding"])
            ids = [str(p) for p in table.column("pin_id").to_pylist()]
            vecs = np.asarray(table.column("embedding").to_pylist(), dtype=np.float32)
            res["n_pins"], res["dim"] = len(ids), dim
            rng = np.random.default_rng(1)
            picks = rng.choice(len(ids), size=args.queries, replace=False)
            qv = vecs[picks] + 0.5 * vecs[picks].std() * rng.standard_normal((args.queries, dim)).astype(np.float32)
            qv /= np.linalg.norm(qv, axis=1, keepdims=True)
            queries = [f"bench query {i}" for i in range(args.queries)]
            EmbeddingStore.from_config(store.config, store.get_feature_view("query_embedding")).write(
                queries, qv, model_version="bench")

            ranker = Ranker(repo, store=store)
            t = time.perf_counter()
            index = ranker.index()
            res["index_build_s"] = round(time.perf_counter() - t, 2)
            t = time.perf_counter()
            fresh = Ranker(repo, store=store)
            fresh.index()
            res["index_load_s"] = round(time.perf_counter() - t, 2)

            old = []
            for _ in range(3):
                t = time.perf_counter()
                ranker.pins.fetch_with_versions(ids)
                old.append(time.perf_counter() - t)
            res["fetch_all_pins_per_call_s"] = round(min(old), 3)

            for q in queries[:5]:  # warm-up
                ranker.rank(q, k=args.k, candidates=args.candidates)
            total, qf, search, cand = [], [], [], []
            recall = []
            for q, v in zip(queries, qv, strict=True):
                t0 = time.perf_counter()
                ranker.rank(q, k=args.k, candidates=args.candidates)
                total.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                vec, _, _ = ranker.query_vector(q)
                t1 = time.perf_counter()
                cids = index.search(vec, args.candidates)
                t2 = time.perf_counter()
                ranker.pins.fetch(cids)
                t3 = time.perf_counter()
                qf.append(t1 - t0)
                search.append(t2 - t1)
                cand.append(t3 - t2)
                exact = {ids[i] for i in np.argsort(-(vecs @ v))[: args.k]}
                recall.append(len(exact & set(cids)) / args.k)
            res["rank_ms"] = _pct(total)
            res["steps_ms"] = {"query-vector fetch": _pct(qf), "index search": _pct(search),
                               f"candidate fetch ({args.candidates})": _pct(cand)}
            res["recall_of_candidates"] = round(float(np.mean(recall)), 4)
            res["index_dir_mb"] = round(sum(f.stat().st_size for f in index.directory.iterdir()) / 2**20, 1)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return res


def markdown(res: dict) -> str:
    lines = [f"# `searchsage rank` per query, {res['n_pins']:,} pins × {res['dim']}-d", "",
             f"Pins: {res['pins']}. Machine: {res['machine']}; faiss threads {res['threads']}; "
             f"k={res['k']}, candidates={res['candidates']}, {res['queries']} queries.", "",
             "| per query | p50 ms | p99 ms |", "|---|---:|---:|",
             f"| `Ranker.rank` (end to end) | {res['rank_ms']['p50']} | {res['rank_ms']['p99']} |"]
    for name, p in res["steps_ms"].items():
        lines.append(f"| {name} | {p['p50']} | {p['p99']} |")
    lines += ["", "| once per pin-embedding version | seconds |", "|---|---:|",
              f"| index build (online-store scan + HNSW) | {res['index_build_s']} |",
              f"| index load from disk (new process) | {res['index_load_s']} |",
              f"| previous ranker: every pin vector fetched on each call | {res['fetch_all_pins_per_call_s']} |", "",
              f"Recall@{res['k']} of the candidates vs exact search: {res['recall_of_candidates']}. "
              f"Index on disk: {res['index_dir_mb']} MB. Ingest {res['ingest_s']} s, materialise "
              f"{res['materialize_s']} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--pins-file", type=Path, default=HOMEDEPOT_PINS,
                   help="pins parquet with an embedding column (default runs/homedepot/pins.parquet when present)")
    p.add_argument("--synthetic", action="store_true", help="use a synthetic pin set even if --pins-file exists")
    p.add_argument("--pins", type=int, default=50_000, help="synthetic pins (default 50000)")
    p.add_argument("--dim", type=int, default=384, help="synthetic dimension (default 384)")
    p.add_argument("--queries", type=int, default=300, help="timed queries (default 300)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--candidates", type=int, default=100)
    p.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads (default 2)")
    p.add_argument("--quick", action="store_true", help="2,000 synthetic pins × 32-d, 50 queries")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = p.parse_args(argv)
    if args.quick:
        args.synthetic, args.pins, args.dim, args.queries = True, 2_000, 32, 50
    res = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rank.json").write_text(json.dumps(res, indent=2))
    (args.out / "rank.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
