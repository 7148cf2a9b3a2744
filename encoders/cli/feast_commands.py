"""``searchsage redis start|stop|status`` (development server), ``searchsage feast ingest|index`` (your
pins and queries into the repository's sources; the ranker's ANN index) and ``searchsage rank``.

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

INGEST_EPILOG = """\
pins: a parquet or CSV file with pin_id and text, and optionally embedding (your frozen item vectors:
a list column, or "[0.1, ...]" in CSV) and model_version. Pins with an embedding are materialised
with exactly that vector; the bundle's pin tower embeds the others from text.
queries: any file with a column of raw query text (a search log works: repeats count once).
homefeed: a dataset directory of `searchsage homefeed generate` (or yours in that format); the
user_embedding view appears at the next `feast apply` and is materialised by the exported user tower
($SEARCHSAGE_USER_BUNDLE) with the `feast materialize ... --views user_embedding` printed here.
Re-running with the same file changes nothing; changed rows get a new event time and are picked up
by the next `feast -c REPO materialize-incremental`.
"""


def register(subparsers: Any) -> None:
    r = subparsers.add_parser("redis", help="start/stop/inspect a local development redis-server",
                              description="Manage a local redis-server on 127.0.0.1. Without --port, the port of "
                              "$SEARCHSAGE_REDIS (else 6379); pid file, log and data in --dir (default "
                              "$SEARCHSAGE_HOME/redis/PORT, $SEARCHSAGE_HOME=~/.searchsage), so stop and status "
                              "find the server from any working directory.")
    rsub = r.add_subparsers(dest="redis_command", metavar="ACTION", required=True)
    for name, helptext in (("start", "start a redis-server that keeps running after this command"),
                           ("stop", "stop the server recorded in --dir"),
                           ("status", "say whether the server in --dir runs and answers on --port")):
        p = rsub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--port", type=int, default=None,
                       help="TCP port on 127.0.0.1 (default: the port of $SEARCHSAGE_REDIS, else 6379)")
        p.add_argument("--dir", type=Path, default=None,
                       help="directory for redis.pid, redis.log and data (default $SEARCHSAGE_HOME/redis/PORT)")
        if name == "start":
            p.add_argument("--password", default=None, help="require this password (AUTH)")
        p.set_defaults(func={"start": cmd_redis_start, "stop": cmd_redis_stop, "status": cmd_redis_status}[name])

    f = subparsers.add_parser("feast", help="put your pins and queries into a Feast repository; build its ANN index",
                              description="Prepare a Feast repository (feature_repo/) for `feast apply` and "
                              "`feast materialize-incremental`.")
    fsub = f.add_subparsers(dest="feast_command", metavar="ACTION", required=True)
    ing = fsub.add_parser("ingest", help="add your pins and/or queries (parquet or CSV) to the repository's sources",
                          description="Check a pins and/or queries file and merge it into REPO/data/pins.parquet / "
                          "queries.parquet with event timestamps, idempotently.", epilog=INGEST_EPILOG,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    ing.add_argument("--repo", type=Path, default=Path("feature_repo"), help="Feast repository (default feature_repo)")
    ing.add_argument("--pins", type=Path, help="pins file (.parquet or .csv)")
    ing.add_argument("--queries", type=Path, help="queries file (.parquet or .csv)")
    ing.add_argument("--homefeed", type=Path, metavar="DIR",
                     help="a homefeed dataset directory (events.parquet, pins.parquet with embedding[, "
                     "user_interests.parquet]; docs/homefeed.md): its events go to REPO/data/homefeed/ and one row "
                     "per user with new events, as of their latest event, to REPO/data/users.parquet, the source "
                     "of the user_embedding view")
    ing.add_argument("--id-column", default="pin_id", help="pin id column (default pin_id)")
    ing.add_argument("--text-column", default="text", help="pin text column (default text)")
    ing.add_argument("--embedding-column", default="embedding",
                     help="column of your frozen pin vectors, used as they are (default embedding; optional)")
    ing.add_argument("--query-column", default="query", help="query text column (default query)")
    ing.add_argument("--timestamp-column", default=None,
                     help="event time column of both files (default: none; new and changed rows are stamped now)")
    ing.add_argument("--encoding", default="utf-8", help="CSV text encoding (default utf-8; latin-1 for Home Depot)")
    ing.set_defaults(func=cmd_feast_ingest)
    idx = fsub.add_parser("index", help="build (or load) the ranker's ANN index for the current pin embeddings",
                          description="Build the faiss HNSW index over the online store's pin embeddings once for "
                          "their current version and keep it in REPO/data/pin_index/ (`searchsage rank` does this "
                          "on first use; run it after materialising to keep that out of the first query).")
    idx.add_argument("--repo", type=Path, default=Path("feature_repo"), help="Feast repository (default feature_repo)")
    idx.add_argument("--rebuild", action="store_true",
                     help="build even when an index of this version exists (after writes outside materialisation)")
    idx.set_defaults(func=cmd_feast_index)

    k = subparsers.add_parser("rank", help="rank pins for a query (or a user's homefeed) from the Feast online store",
                              description="Embed or fetch the query — or, with --user, fetch the user's stored "
                              "user_embedding — retrieve candidate pins from a faiss HNSW index over pin embeddings "
                              "(built once per pin-embedding version, kept in REPO/data/pin_index/), fetch their "
                              "embeddings from Redis, score and print.")
    k.add_argument("query", nargs="?", default=None,
                   help="query text (normalised the same way as training and the feature store)")
    k.add_argument("--user", default=None, metavar="ID",
                   help="rank for this user's homefeed instead of a query: the vector the user tower materialised "
                   "into the user_embedding view (an error when the user has none)")
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
    from encoders.cli_support import CLIError

    return CLIError(str(exc))


def _redis_target(args: argparse.Namespace) -> tuple[int, Path]:
    from encoders.localredis.server import default_dir, port_from_env
    from encoders.redis_records.connection import RedisUnavailable

    try:
        port = args.port if args.port is not None else port_from_env()
    except RedisUnavailable as exc:
        raise _cli_error(exc) from exc
    return port, (args.dir.expanduser().resolve() if args.dir is not None else default_dir(port))


def cmd_redis_start(args: argparse.Namespace) -> int:
    from encoders.localredis.server import start_daemon
    from encoders.redis_records.connection import RedisUnavailable

    port, directory = _redis_target(args)
    try:
        server = start_daemon(directory, port, args.password)
    except RedisUnavailable as exc:
        raise _cli_error(exc) from exc
    pid = server._proc.pid if server._proc else None
    print(f"redis-server pid {pid} on {server.host}:{server.port} (pid file, log, data: {directory})")
    print(f"export SEARCHSAGE_REDIS='{server.connection_string}'")
    return 0


def cmd_redis_stop(args: argparse.Namespace) -> int:
    from encoders.localredis.server import ping, stop_daemon
    from encoders.redis_records.connection import RedisUnavailable

    port, directory = _redis_target(args)
    try:
        pid = stop_daemon(directory)
    except RedisUnavailable as exc:
        raise _cli_error(exc) from exc
    if pid:
        print(f"stopped redis-server pid {pid} ({directory})")
        return 0
    if ping("127.0.0.1", port):
        raise _cli_error(RuntimeError(
            f"no redis-server recorded in {directory}, but something answers on 127.0.0.1:{port}: it was not "
            "started by `searchsage redis start` with this port/--dir; stop it where it was started"))
    print(f"no redis-server was running from {directory}")
    return 0


def cmd_redis_status(args: argparse.Namespace) -> int:
    from encoders.localredis.server import daemon_status

    port, directory = _redis_target(args)
    st = daemon_status(directory, port)
    state = "running" if st.alive else "not running"
    print(f"{state} (pid file {st.directory / 'redis.pid'}: {st.pid}); "
          f"127.0.0.1:{st.port} {'answers' if st.answers else 'does not answer'}")
    return 0 if st.alive and st.answers else 1


def _check_repo(repo: Path) -> None:
    if not (repo / "feature_store.yaml").is_file():
        raise _cli_error(FileNotFoundError(f"{repo / 'feature_store.yaml'} not found: --repo must be a Feast repo"))


def _expected_pin_dim(repo: Path) -> int | None:
    """Vector length pins must have: the applied view's, else $SEARCHSAGE_EMBEDDING_DIM / the bundle's D."""
    from encoders.featurestore.contract import PIN_VIEW, declared_dim
    from encoders.featurestore.sources import registry_view
    from encoders.featurestore.udfs import expected_dim

    view = registry_view(repo, PIN_VIEW)
    return (declared_dim(view) if view is not None else None) or expected_dim()


def cmd_feast_ingest(args: argparse.Namespace) -> int:
    from encoders.featurestore.sources import IngestError, PinColumns, ingest_pins, ingest_queries

    _check_repo(args.repo)
    if args.pins is None and args.queries is None and args.homefeed is None:
        raise _cli_error(ValueError("nothing to ingest: give --pins FILE, --queries FILE and/or --homefeed DIR"))
    reports: list[Any] = []
    try:
        if args.pins is not None:
            cols = PinColumns(args.id_column, args.text_column, args.embedding_column, timestamp=args.timestamp_column)
            reports.append(ingest_pins(args.repo, args.pins, cols, _expected_pin_dim(args.repo), args.encoding))
        if args.queries is not None:
            reports.append(ingest_queries(args.repo, args.queries, args.query_column, args.timestamp_column,
                                          args.encoding))
        users = None
        if args.homefeed is not None:
            from encoders.featurestore.user_sources import ingest_homefeed

            users = ingest_homefeed(args.repo, args.homefeed)
    except (IngestError, FileNotFoundError, ValueError) as exc:
        raise _cli_error(exc) from exc
    for rep in reports:
        print(rep.summary())
        if getattr(rep, "older_than_materialised", 0):
            print(f"  note: {rep.older_than_materialised} rows are older than the last materialisation; "
                  f"`materialize-incremental` will not see them: run `feast -c {args.repo} materialize START END`")
    if any(r.new or r.changed for r in reports):
        print(f"next: feast -c {args.repo} apply && feast -c {args.repo} materialize-incremental $(date -u +%FT%T)")
    if users is not None:
        print(users.summary())
        command = users.materialize_command(args.repo)
        if command:
            print(f"next (users, with SEARCHSAGE_USER_BUNDLE set to `searchsage homefeed export`'s output): "
                  f"feast -c {args.repo} apply && {command}")
    return 0


def cmd_feast_index(args: argparse.Namespace) -> int:

    _check_repo(args.repo)
    try:
        ranker = _open_ranker(args.repo)
        index = ranker.index(rebuild=args.rebuild)
    except _ranker_errors() as exc:
        raise _cli_error(exc) from exc
    how = f"built in {index.build_seconds:.1f} s" if index.build_seconds is not None else "already built"
    print(f"pin index {index.version}: {len(index.ids)} pins, {ranker.dim}-d, {how} ({index.directory})")
    return 0


def _ranker_errors() -> tuple[type[BaseException], ...]:
    from feast.errors import FeastObjectNotFoundException

    from encoders.redis_records.connection import RedisUnavailable

    return (RedisUnavailable, FileNotFoundError, LookupError, ValueError, FeastObjectNotFoundException)


def _open_ranker(repo: Path) -> Any:
    import warnings

    import feast.batch_feature_view  # noqa: F401  (its import puts a filter of its own in front of ours)

    from encoders.ranking.ranker import Ranker

    warnings.filterwarnings("ignore", message="Batch feature views are experimental", category=RuntimeWarning)
    if not (repo / "data" / "registry.db").exists():
        raise FileNotFoundError(f"{repo} has no registry yet: run `feast -c {repo} apply` first")
    return Ranker(repo)


def cmd_rank(args: argparse.Namespace) -> int:
    _check_repo(args.repo)
    if (args.query is None) == (args.user is None):
        raise _cli_error(ValueError('give a query ("searchsage rank TEXT") or --user ID, not both and not neither'))
    if args.user is not None and args.rerank is not None:
        raise _cli_error(ValueError("--rerank grades (query, pin) pairs; it does not apply to --user"))
    if args.k < 1 or args.candidates < args.k:
        raise _cli_error(ValueError(f"need 1 <= --k <= --candidates, got k={args.k}, candidates={args.candidates}"))
    if args.bundle is not None:
        os.environ["SEARCHSAGE_BUNDLE"] = str(args.bundle.resolve())
    if args.rerank is not None and not (args.rerank / "student.json").is_file():
        raise _cli_error(FileNotFoundError(f"--rerank {args.rerank}: no student.json there (write one with "
                                           "`searchsage relevance train-student`)"))
    try:
        ranker = _open_ranker(args.repo)
        reranker = None
        if args.rerank is not None:
            from encoders.relevance.rerank import StudentReranker

            reranker = StudentReranker(args.rerank, args.repo, store=ranker.store)
        if args.user is not None:
            result = ranker.rank_user(args.user, k=args.k, candidates=args.candidates)
        else:
            result = ranker.rank(args.query, k=args.k, candidates=args.candidates, rerank=reranker)
    except _ranker_errors() as exc:
        raise _cli_error(exc) from exc
    if args.user is not None:
        print(f"user: {result.query!r} (homefeed vector from the store, model {result.model_version})")
        for i, hit in enumerate(result.hits, 1):
            print(f"{i:>3}  {hit.score:8.4f}  {hit.pin_id}  {hit.text}")
        return 0
    print(f"query: {result.query!r} (vector from {result.vector_source}, model {result.model_version})")
    if result.reranker is not None:
        print(f"reranked by student {result.reranker}; columns: rank, student grade, embedding score, pin, text")
        for i, hit in enumerate(result.hits, 1):
            print(f"{i:>3}  {hit.student:6.3f}  {hit.score:8.4f}  {hit.pin_id}  {hit.text}")
        return 0
    for i, hit in enumerate(result.hits, 1):
        print(f"{i:>3}  {hit.score:8.4f}  {hit.pin_id}  {hit.text}")
    return 0
