"""The demo's homefeed part, at small size: synthetic users over the demo's own pins → the user tower
(+ its two ablations) → Recall@k with paired CIs → ONNX → ``user_embedding`` through Feast → ``rank --user``.

Pure description and reading of results (no sub-commands are run here): :func:`homefeed_catalogue` says
whether the demo's dataset is a synthetic catalogue homefeed can run over, :func:`build_homefeed_plan`
lists the steps before the feature store, :func:`feast_steps` those after ``feast apply``, and
:func:`homefeed_summary` reads the numbers the demo's ``summary.json`` records.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from encoders.demo.plan import DemoConfig, Step


@dataclass(frozen=True)
class HomefeedDemoSize:
    """Sizes of the demo's homefeed: small enough to add about a minute on two cores."""

    users: int
    days: int = 30
    events_per_user: float = 30.0
    epochs: float = 2.0
    eval_days: float = 7.0
    bootstrap_reps: int = 200


SMALL = HomefeedDemoSize(users=300)
FULL = HomefeedDemoSize(users=1_000, epochs=1.0)
#: Every homefeed step's title starts so (the summary adds up their time).
PREFIX = "homefeed:"
#: Steps the homefeed part adds: 4 before the feature store, ingest, materialise, rank --user.
STEPS = 7


def size(cfg: DemoConfig) -> HomefeedDemoSize:
    return SMALL if cfg.small else FULL


def homefeed_catalogue(cfg: DemoConfig) -> tuple[int, int] | None:
    """``(n_pins, seed)`` of the demo's synthetic catalogue, or None when the dataset is not one
    (``--data``: homefeed's generator draws users over the synthetic catalogue's types and categories)."""
    meta = cfg.dataset_dir / "dataset.json"
    if not meta.is_file():
        return None
    info = json.loads(meta.read_text())
    if info.get("kind") != "synthetic":
        return None
    return int(info["config"]["n_pins"]), int(info["config"].get("seed", 0))


def build_homefeed_plan(cfg: DemoConfig, n_pins: int, seed: int) -> list[Step]:
    """Generate, train (with ablations), evaluate and export, all single-threaded at :func:`size`."""
    sz = size(cfg)
    data, run, bundle = str(cfg.homefeed_data), str(cfg.homefeed_run), str(cfg.homefeed_bundle)
    threads = ["--threads", "1"]  # the towers are small; a second torch thread waits more than it helps here
    return [
        Step(f"{PREFIX} synthetic users engaging with the demo's pins", "searchsage",
             ["homefeed", "generate", "--out", data, "--pins-from", str(cfg.dataset_dir), "--n-pins", str(n_pins),
              "--seed", str(seed), "--n-users", str(sz.users), "--days", str(sz.days),
              "--events-per-user", str(sz.events_per_user), "--no-progress"],
             skip_if_exists=cfg.homefeed_data / "homefeed_dataset.json"),
        Step(f"{PREFIX} train the user tower and its two ablations", "searchsage",
             ["homefeed", "train", "--data", data, "--out", run, "--ablations", "--epochs", str(sz.epochs),
              "--eval-days", str(sz.eval_days), *threads, "--no-progress"],
             skip_if_exists=None if cfg.retrain else cfg.homefeed_run / "ablations" / "no_feature_crossing"
             / "train_summary.json"),
        Step(f"{PREFIX} Recall@k vs mean of recent pins and popularity (paired CIs)", "searchsage",
             ["homefeed", "evaluate", "--data", data, "--run", run, "--out", str(cfg.homefeed_eval),
              "--bootstrap-reps", str(sz.bootstrap_reps), *threads, "--no-progress"]),
        Step(f"{PREFIX} export the user tower to ONNX (torch-free scoring)", "searchsage",
             ["homefeed", "export", "--run", run, "--out", bundle]),
    ]


def ingest_step(cfg: DemoConfig) -> Step:
    return Step(f"{PREFIX} events and users into the feature repository", "searchsage",
                ["feast", "ingest", "--repo", str(cfg.repo_dir), "--homefeed", str(cfg.homefeed_data)])


def first_user_row(cfg: DemoConfig) -> datetime:
    """The earliest ``event_timestamp`` of the repository's users source (where materialisation starts)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from encoders.featurestore.contract import USERS_SOURCE

    return pc.min(pq.read_table(cfg.repo_dir / USERS_SOURCE, columns=["event_timestamp"]).column(0)).as_py()


def pick_user(cfg: DemoConfig) -> str:
    """The user with the most positive events (ties: the smallest id): the ``rank --user`` example."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ev = pq.read_table(cfg.homefeed_data / "events.parquet", columns=["user_id", "action"])
    ev = ev.filter(pc.invert(pc.equal(ev.column("action"), "hide")))
    counts = ev.group_by("user_id").aggregate([("action", "count")]).to_pylist()
    return min(counts, key=lambda r: (-r["action_count"], r["user_id"]))["user_id"]


def feast_steps(cfg: DemoConfig, end: str, user: str) -> list[Step]:
    """Materialise ``user_embedding`` over the users' time range, then rank pins for ``user``."""
    from encoders.featurestore.contract import USER_VIEW

    start = first_user_row(cfg).replace(microsecond=0, tzinfo=None).isoformat()
    repo = str(cfg.repo_dir)
    return [
        Step(f"{PREFIX} feast materialize — the ONNX user tower embeds every user as of their latest event", "feast",
             ["-c", repo, "materialize", start, end, "--views", USER_VIEW]),
        Step(f"{PREFIX} rank --user {user} — the stored user vector searches the pin index", "searchsage",
             ["rank", "--user", user, "--repo", repo, "--k", "10"]),
    ]


def homefeed_summary(cfg: DemoConfig, user: str | None) -> dict[str, Any]:
    """What ``summary.json`` records: data sizes, Recall@10 per system and the paired CIs vs the tower."""
    from encoders.homefeed.report import REPORT_JSON

    info = json.loads((cfg.homefeed_data / "homefeed_dataset.json").read_text())
    report = json.loads((cfg.homefeed_eval / REPORT_JSON).read_text())
    recall = {name: round(per["all"]["overall"]["10"], 4) for name, per in report["systems"].items()}
    deltas = {c["b"]: {k: round(v, 4) for k, v in c["ci"]["10"].items() if k in ("diff", "low", "high")}
              for c in report["comparisons"] if c["corpus"] == "all" and c["slice"] == "overall"}
    return {"data": str(cfg.homefeed_data), "run": str(cfg.homefeed_run), "bundle": str(cfg.homefeed_bundle),
            "eval_report": str(cfg.homefeed_eval / REPORT_JSON), "users": info["users"], "events": info["events"],
            "eval_users": report["users"], "model_version": report["model_version"], "recall_at_10": recall,
            "tower_minus_baseline_recall_at_10": deltas, "rank_user": user}
