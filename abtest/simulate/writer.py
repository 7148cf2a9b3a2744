"""Turn simulated integer-coded events into the production event logs (parquet part files)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa

from abtest.logs import CLICKS, EXPOSURES, IMPRESSIONS, SEARCHES, write_log
from abtest.simulate.engine import Arena, Events, SimConfig, simulate_events


def _strings(prefix: str, ids: np.ndarray, width: int) -> pa.Array:
    """``prefix + zero-padded id`` for each of ``ids (N,)`` built on the unique ids only."""
    uniq, inv = np.unique(ids, return_inverse=True)
    names = np.char.add(prefix, np.char.zfill(uniq.astype(str), width))
    return pa.array(names.astype(object), type=pa.string()).take(pa.array(inv.astype(np.int64)))


def _ts(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), type=pa.int64()).cast(pa.timestamp("us", tz="UTC"))


def events_to_tables(ev: Events, arena: Arena, cfg: SimConfig, chunk: int) -> dict[str, pa.Table]:
    """The four log tables of one chunk; user ids ``u0000042``, session ids ``s<chunk>-<n>``."""
    queries = pa.array(arena.queries, type=pa.string())
    pins = pa.array(arena.pin_ids, type=pa.string())
    user = _strings("u", ev.s_user, 7)
    session = _strings(f"s{chunk}-", ev.s_session, 7)
    query = queries.take(pa.array(ev.s_query))
    idx = pa.array(ev.i_search.astype(np.int64))
    i_ts = ev.s_ts[ev.i_search] + ev.i_pos.astype(np.int64) * 100_000
    impressions = pa.table({
        "user_id": user.take(idx), "session_id": session.take(idx), "query": query.take(idx),
        "pin_id": pins.take(pa.array(ev.i_pin)), "position": pa.array(ev.i_pos), "timestamp": _ts(i_ts),
    })
    cidx = pa.array(ev.c_imp.astype(np.int64))
    clicks = pa.table({
        "user_id": impressions["user_id"].take(cidx), "session_id": impressions["session_id"].take(cidx),
        "query": impressions["query"].take(cidx), "pin_id": impressions["pin_id"].take(cidx),
        "position": impressions["position"].take(cidx), "timestamp": _ts(i_ts[ev.c_imp] + 2_000_000),
        "dwell_s": pa.array(ev.c_dwell, type=pa.float64()),
    })
    searches = pa.table({
        "user_id": user, "session_id": session, "query": query, "timestamp": _ts(ev.s_ts),
        "is_related": pa.array(ev.s_related),
    })
    arm = np.where(ev.e_treat, cfg.treatment, cfg.control).astype(object)
    exposures = pa.table({
        "experiment": pa.array([cfg.experiment] * ev.e_user.size, type=pa.string()),
        "arm": pa.array(arm, type=pa.string()), "user_id": _strings("u", ev.e_user, 7), "timestamp": _ts(ev.e_ts),
    })
    return {EXPOSURES: exposures, IMPRESSIONS: impressions, CLICKS: clicks, SEARCHES: searches}


def write_simulated_logs(arena: Arena, cfg: SimConfig, out_dir: str | Path, users_per_chunk: int = 50_000,
                         progress: bool = True) -> dict[str, int]:
    """Simulate ``cfg.n_users`` users in chunks and write ``out_dir/<table>/part-XXXXX.parquet``.

    Also writes ``simulation.json`` (the config). Returns row counts per table.
    """
    from tqdm.auto import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys((EXPOSURES, IMPRESSIONS, CLICKS, SEARCHES), 0)
    chunks = range(0, cfg.n_users, users_per_chunk)
    for chunk, lo in enumerate(tqdm(chunks, desc="simulate", unit="chunk", disable=not progress)):
        ev = simulate_events(arena, cfg, lo, min(cfg.n_users, lo + users_per_chunk))
        for name, table in events_to_tables(ev, arena, cfg, chunk).items():
            write_log(table, out / name / f"part-{chunk:05d}.parquet", name)
            counts[name] += table.num_rows
    (out / "simulation.json").write_text(json.dumps({"config": asdict(cfg), "rows": counts}, indent=2))
    return counts
