"""``searchsage redis start|stop|status`` (development server) and ``searchsage rank`` (a ranker).

``rank`` is the reference consumer of the feature store: one ``get_online_features`` call gives
the query vector (stored, or embedded live by the ``query_vector`` on-demand view), a faiss HNSW
index over the pin embeddings gives candidates, and the candidates' embeddings come back from
the online store as one numpy array (:class:`EmbeddingStore`) to be scored.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

DEFAULT_REDIS_DIR = Path(".searchsage") / "redis"


def register(subparsers: Any) -> None:
    r = subparsers.add_parser("redis", help="start/stop/inspect a local development redis-server",
                              description="Manage a local redis-server on 127.0.0.1 (pid file + log in --dir).")
    rsub = r.add_subparsers(dest="redis_command", metavar="ACTION", required=True)
    for name, helptext in (("start", "start a redis-server that keeps running after this command"),
                           ("stop", "stop the server recorded in --dir"),
                           ("status", "say whether the server in --dir runs and answers on --port")):
        p = rsub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--port", type=int, default=6379, help="TCP port on 127.0.0.1 (default 6379)")
        p.add_argument("--dir", type=Path, default=DEFAULT_REDIS_DIR,
                       help=f"directory for redis.pid, redis.log and data (default {DEFAULT_REDIS_DIR})")
        if name == "start":
            p.add_argument("--password", default=None, help="require this password (AUTH)")
        p.set_defaults(func={"start": cmd_redis_start, "stop": cmd_redis_stop, "status": cmd_redis_status}[name])

    k = subparsers.add_parser("rank", help="rank pins for a query from the Feast online store",
                              description="Embed or fetch the query, retrieve candidate pins from a faiss HNSW "
                              "index over pin embeddings, fetch their embeddings from Redis, score and print.")
    k.add_argument("query", help="query text (normalised the same way as training and the feature store)")
    k.add_argument("--repo", type=Path, default=Path("feature_repo"), help="Feast repository (default feature_repo)")
    k.add_argument("--bundle", type=Path, default=None,
                   help="bundle directory for live embedding (default: $SEARCHSAGE_BUNDLE)")
    k.add_argument("--k", type=int, default=10, help="results to print (default 10)")
    k.add_argument("--candidates", type=int, default=100, help="HNSW candidates to re-score (default 100)")
    k.add_argument("--rerank", type=Path, default=None, metavar="STUDENT",
                   help="re-score the candidates with a relevance student (searchsage relevance train-student; "
                   "needs the repo's pin_engagement view) and order by its grade; prints both scores")
    k.set_defaults(func=cmd_rank)


def _cli_error(exc: BaseException) -> Exception:
    from encoders.cli.main import CLIError

    return CLIError(str(exc))


def cmd_redis_start(args: argparse.Namespace) -> int:
    from encoders.featurestore.redis_server import RedisUnavailable, start_daemon

    try:
        server = start_daemon(args.dir, args.port, args.password)
    except RedisUnavailable as exc:
        raise _cli_error(exc) from exc
    pid = server._proc.pid if server._proc else None
    print(f"redis-server pid {pid} on {server.host}:{server.port} (dir {args.dir})")
    print(f"export SEARCHSAGE_REDIS='{server.connection_string}'")
    return 0


def cmd_redis_stop(args: argparse.Namespace) -> int:
    from encoders.featurestore.redis_server import RedisUnavailable, stop_daemon

    try:
        pid = stop_daemon(args.dir)
    except RedisUnavailable as exc:
        raise _cli_error(exc) from exc
    print(f"stopped redis-server pid {pid}" if pid else f"no redis-server was running from {args.dir}")
    return 0


def cmd_redis_status(args: argparse.Namespace) -> int:
    from encoders.featurestore.redis_server import daemon_status

    st = daemon_status(args.dir, args.port)
    state = "running" if st.alive else "not running"
    print(f"{state} (pid file {st.directory / 'redis.pid'}: {st.pid}); "
          f"127.0.0.1:{st.port} {'answers' if st.answers else 'does not answer'}")
    return 0 if st.alive and st.answers else 1


def cmd_rank(args: argparse.Namespace) -> int:
    import warnings

    from encoders.featurestore.ranking import rank_query
    from encoders.featurestore.redis_server import RedisUnavailable

    if not (args.repo / "feature_store.yaml").is_file():
        raise _cli_error(FileNotFoundError(f"{args.repo / 'feature_store.yaml'} not found: --repo must be a Feast repo"))
    if args.k < 1 or args.candidates < args.k:
        raise _cli_error(ValueError(f"need 1 <= --k <= --candidates, got k={args.k}, candidates={args.candidates}"))
    if args.bundle is not None:
        os.environ["SEARCHSAGE_BUNDLE"] = str(args.bundle.resolve())
    if args.rerank is not None and not (args.rerank / "student.json").is_file():
        raise _cli_error(FileNotFoundError(f"--rerank {args.rerank}: no student.json there (write one with "
                                           "`searchsage relevance train-student`)"))
    warnings.filterwarnings("ignore", message="Batch feature views are experimental", category=RuntimeWarning)
    try:
        result = rank_query(args.repo, args.query, k=args.k, candidates=args.candidates, rerank=args.rerank)
    except (RedisUnavailable, FileNotFoundError, LookupError, ValueError) as exc:
        raise _cli_error(exc) from exc
    print(f"query: {result.query!r} (vector from {result.vector_source}, model {result.model_version})")
    if result.reranker is not None:
        print(f"reranked by student {result.reranker}; columns: rank, student grade, embedding score, pin, text")
        for i, hit in enumerate(result.hits, 1):
            print(f"{i:>3}  {hit.student:6.3f}  {hit.score:8.4f}  {hit.pin_id}  {hit.text}")
        return 0
    for i, hit in enumerate(result.hits, 1):
        print(f"{i:>3}  {hit.score:8.4f}  {hit.pin_id}  {hit.text}")
    return 0
