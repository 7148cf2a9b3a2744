"""Run the demo: every step is a real ``searchsage`` sub-command or the stock ``feast`` CLI.

Steps print as ``[i/n] title`` with the command line, so a user can re-run any of them alone.
Re-running is safe: finished data, embeddings and training runs are reused; Feast
materialisation overwrites; A/B logs and results are rewritten.

Why the steps go through the command line and not the library functions: the demo's promise is
that each printed ``searchsage ...`` line, pasted into a shell, does exactly what the demo did
(argument parsing, defaults, path resolution and error messages included). Running the very argv
it prints is the only way to keep that true. The demo does not import the CLI (the CLI sits above
it): ``searchsage demo`` hands its own ``main`` in as ``searchsage=``; without it each step runs as
``python -m encoders.cli.main ...`` in a child process.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from encoders.demo.online_store import choose_online_store, use_sqlite
from encoders.demo.plan import DemoConfig, Step, build_plan
from encoders.featurestore.contract import DIM_ENV, USER_BUNDLE_ENV

ROOT = Path(__file__).resolve().parents[2]


class DemoStepFailed(RuntimeError):
    """A demo step exited non-zero; the message names the step and the command to re-run it."""


def _say(msg: str) -> None:
    print(msg, flush=True)


#: Runs one ``searchsage`` argv and returns its exit status.
SearchsageRunner = Callable[[list[str]], int]


def _searchsage_subprocess(args: list[str]) -> int:
    return subprocess.run([sys.executable, "-m", "encoders.cli.main", *args], check=False).returncode


def run_step(step: Step, index: int, total: int, env: dict[str, str],
             searchsage: SearchsageRunner = _searchsage_subprocess) -> float:
    """Run one step, return its wall time (s); raise :class:`DemoStepFailed` on failure."""
    shown = ("searchsage " if step.kind == "searchsage" else "feast ") + " ".join(map(shlex.quote, step.args))
    if step.skip_if_exists is not None and step.skip_if_exists.exists():
        _say(f"[{index}/{total}] {step.title}: already done ({step.skip_if_exists}), skipped")
        return 0.0
    _say(f"\n[{index}/{total}] {step.title}\n  $ {shown}")
    t0 = time.perf_counter()
    if step.kind == "searchsage":
        code = searchsage(step.args)
    else:
        feast = str(Path(sys.executable).with_name("feast"))
        code = subprocess.run([feast, *step.args], env=env, check=False).returncode
    if code not in step.ok_exit_codes:
        raise DemoStepFailed(f"step '{step.title}' failed with exit code {code}; re-run it alone with: {shown}")
    return time.perf_counter() - t0


def _prepare_repo(cfg: DemoConfig) -> None:
    """Copy the project's feature_repo into the work dir and add the dataset's raw queries and pins."""
    import pyarrow.parquet as pq

    from encoders.featurestore.sources import append_pins, append_queries

    repo = cfg.repo_dir
    if repo.exists():
        shutil.rmtree(repo)
    shutil.copytree(ROOT / "feature_repo", repo, ignore=shutil.ignore_patterns("data", "__pycache__"))
    (repo / "data").mkdir()
    pins = pq.read_table(cfg.dataset_dir / "pins.parquet", columns=["pin_id", "text"])
    queries = pq.read_table(cfg.dataset_dir / "engagements.parquet", columns=["query"]).column("query")
    when = datetime.now(timezone.utc) - timedelta(minutes=5)
    append_queries(repo, sorted(set(queries.to_pylist())), when)
    append_pins(repo, pins.column("pin_id").to_pylist(), pins.column("text").to_pylist(), when)


def _pick_query(cfg: DemoConfig) -> str:
    if cfg.query_for_rank:
        return cfg.query_for_rank
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from encoders.data.split import is_eval_query

    q = pq.read_table(cfg.dataset_dir / "judgments.parquet", columns=["query"]).column("query")
    counts = pc.value_counts(q).to_pylist()
    held_out = sorted((c for c in counts if is_eval_query(c["values"])), key=lambda c: (-c["counts"], c["values"]))
    return (held_out or sorted(counts, key=lambda c: -c["counts"]))[0]["values"]


#: Environment the in-process steps after ``feast apply`` need; set while the demo runs, then restored.
DEMO_ENV_KEYS = ("SEARCHSAGE_BUNDLE", DIM_ENV, "SEARCHSAGE_REDIS", USER_BUNDLE_ENV)


def run_demo(cfg: DemoConfig, searchsage: SearchsageRunner | None = None) -> dict[str, object]:
    """Run the whole demo; returns a summary (paths, timings, online store) also written to ``summary.json``.

    ``searchsage`` runs one ``searchsage`` argv (``searchsage demo`` passes the CLI's own ``main``);
    default: a ``python -m encoders.cli.main`` child process per step. The process environment the
    steps need (:data:`DEMO_ENV_KEYS`) is put back as it was when the demo ends."""
    saved = {k: os.environ.get(k) for k in DEMO_ENV_KEYS}
    try:
        return _run_demo(cfg, searchsage or _searchsage_subprocess)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_demo(cfg: DemoConfig, run_cli: SearchsageRunner) -> dict[str, object]:
    from encoders.demo import homefeed as hf

    t_start = time.perf_counter()
    cfg.workdir.mkdir(parents=True, exist_ok=True)
    steps = build_plan(cfg)
    # homefeed runs over the synthetic catalogue: the demo's own, or a synthetic --data directory
    with_hf = cfg.homefeed and (cfg.data is None or hf.homefeed_catalogue(cfg) is not None)
    total = len(steps) + 6 + (hf.STEPS if with_hf else 0)
    timings: dict[str, float] = {}
    env = dict(os.environ)
    n = 0

    def step(s: Step, key: str | None = None) -> None:
        nonlocal n
        n += 1
        timings[key or s.title] = run_step(s, n, total, env, run_cli)

    for s in steps:
        step(s)
    catalogue = hf.homefeed_catalogue(cfg) if with_hf else None
    with_hf = catalogue is not None
    if catalogue is not None:
        for s in hf.build_homefeed_plan(cfg, *catalogue):
            step(s)

    n += 1
    _say(f"\n[{n}/{total}] online store")
    choice = choose_online_store(cfg.workdir)
    _say(f"  {choice.message}")
    _prepare_repo(cfg)
    if with_hf:
        step(hf.ingest_step(cfg))
    dim = json.loads((cfg.bundle_dir / "query" / "manifest.json").read_text())["dim"]
    env.update({"SEARCHSAGE_BUNDLE": str(cfg.bundle_dir), DIM_ENV: str(dim),
                "SEARCHSAGE_ENCODER_THREADS": str(cfg.threads)})
    if with_hf:
        env[USER_BUNDLE_ENV] = str(cfg.homefeed_bundle)
    if choice.kind == "redis":
        env["SEARCHSAGE_REDIS"] = str(choice.connection_string)
    else:
        use_sqlite(cfg.repo_dir)
    os.environ.update({k: env[k] for k in DEMO_ENV_KEYS if k in env})
    repo = str(cfg.repo_dir)
    now = (datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat()
    for title, args in (("feast apply (entities, embedding views, live ODFV, ranker service)", ["-c", repo, "apply"]),
                        ("feast materialize-incremental: the ONNX bundle embeds new queries and pins into the online "
                         "store", ["-c", repo, "materialize-incremental", now])):
        step(Step(title, "feast", args))
    user = hf.pick_user(cfg) if with_hf else None
    hf_feast = hf.feast_steps(cfg, now, user) if user is not None else []
    if hf_feast:
        step(hf_feast[0])

    query = _pick_query(cfg)
    step(Step(f"a ranker query: {query!r}", "searchsage", ["rank", query, "--repo", repo, "--bundle",
                                                             str(cfg.bundle_dir)]), "rank")
    if hf_feast:
        step(hf_feast[1])

    logs, results = str(cfg.logs_dir), str(cfg.results_dir)
    users = min(cfg.users, 2_000) if cfg.small else cfg.users
    sim = ["abtest", "simulate", "--data", str(cfg.dataset_dir), "--out", logs, "--users", str(users),
           "--days", str(cfg.days), "--treatment-bundle", str(cfg.bundle_dir), "--treatment-strategy", "embedding",
           # humans judge every shown result of a random quarter of the queries; the stand-in relevance
           # model labels the rest, and analyze combines the two by PPI (valid only for a random sample)
           "--judged-fraction", "0.25"]
    step(Step("simulate an A/B test: BM25 (control) vs SearchSage retrieval", "searchsage", sim), "simulate")
    shutil.rmtree(cfg.results_dir, ignore_errors=True)
    step(Step("analyse it (CUPED, delta method, Holm, SRM, relevance)", "searchsage",
              ["abtest", "analyze", logs, "--control", "control", "--out", results]), "analyze")

    elapsed = time.perf_counter() - t_start
    summary: dict[str, object] = {
        "workdir": str(cfg.workdir), "dataset": str(cfg.dataset_dir), "run": str(cfg.run_dir),
        "bundle": str(cfg.bundle_dir), "feature_repo": repo, "results": results,
        "online_store": choice.kind, "redis": choice.connection_string, "rank_query": query,
        "seconds": round(elapsed, 1), "step_seconds": {k: round(v, 1) for k, v in timings.items()},
    }
    if with_hf:
        summary["homefeed"] = {**hf.homefeed_summary(cfg, user),
                               "seconds": round(sum(v for k, v in timings.items() if k.startswith(hf.PREFIX)), 1)}
    else:
        summary["homefeed"] = {"skipped": "--no-homefeed" if not cfg.homefeed else
                               "homefeed runs over the synthetic catalogue (not with --data)"}
    redis_env = f"SEARCHSAGE_REDIS={choice.connection_string} " if choice.connection_string else ""
    dash = (f"{redis_env}searchsage dashboard --results {results} --bundle {cfg.bundle_dir} --repo {repo} "
            f"--pins {cfg.dataset_dir / 'pins.parquet'}" + (f" --homefeed {cfg.homefeed_eval}" if with_hf else ""))
    summary["dashboard_command"] = dash
    (cfg.workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    _say(f"\nDemo finished in {elapsed / 60:.1f} min. Open the dashboard with:\n  {dash}")
    return summary
