"""The streaming aggregation engine: parquet record batches → numpy counters → the per-user tables.

Reads only the columns the counts need (``user_id``, ``query``, ``timestamp``, ``dwell_s``,
``is_related``), with ids **dictionary-encoded** as parquet stores them, so a batch's user ids and
queries are mapped to integer codes once per dictionary (:class:`abtest.string_codes.StringCodes`),
not once per row. The counting is ``np.add.at`` into dense per-user counters
(:class:`abtest.event_counts.EventCounter`); a background thread decodes the next batch while numpy
counts the current one. Memory: the counters (``5 × users × (2·segments + days)`` integers, int32
while no count can overflow) plus about three record batches. Same outputs as the SQL engine.

Query segments need the search counts of every query first: one pass over the ``searches``
``query`` column (dictionary indices only), then one pass over each event table.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from abtest.aggregate import AggregateConfig, AggregateResult, choose_experiment, read_custom_segments
from abtest.event_counts import (
    DAY_US,
    USER_DAYS_SCHEMA,
    USERS_SCHEMA,
    CountersTooLarge,
    EventCounter,
    ExposureUsers,
    Segments,
    bool_values,
    counter_bytes,
    custom_segments,
    exposure_users,
    query_segments,
    ts_micros,
)
from abtest.logs import CLICKS, EXPOSURES, IMPRESSIONS, SEARCHES, table_files
from abtest.string_codes import StringCodes

BATCH_ROWS = 1 << 20
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(limit: str) -> int:
    """A DuckDB-style memory size (``"1GB"``, ``"512MiB"``) in bytes."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", limit)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read the memory limit {limit!r} (expected e.g. '1GB' or '512MiB')")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _batches(files: list[Path], columns: list[str], dictionary: list[str]) -> Iterator[pa.RecordBatch]:
    for f in files:
        pf = pq.ParquetFile(f, read_dictionary=dictionary)
        for rg in range(pf.num_row_groups):
            yield from pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[rg], columns=columns, use_threads=True)


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Iterate ``items`` in a background thread, ``depth`` ahead (parquet decoding releases the GIL)."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop, done = threading.Event(), object()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as exc:  # re-raised in the consumer
            put(exc)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        while (item := q.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _read_exposures(logs_dir: Path) -> pa.Table:
    cols = ["experiment", "arm", "user_id", "timestamp"]
    parts = []
    for f in table_files(logs_dir, EXPOSURES):
        t = pq.read_table(f, columns=cols)
        ts, valid = ts_micros(t["timestamp"].combine_chunks())
        parts.append(pa.table({c: t[c].cast(pa.string()) for c in cols[:3]} | {
            "ts": pa.array(ts, mask=None if valid is None else ~valid)}))
    return pa.concat_tables(parts)


def pick_experiment(expo: pa.Table, logs_dir: Path, wanted: str | None) -> str:
    """The experiment to aggregate (same rules and messages as the SQL engine)."""
    names = [n for n in pc.unique(expo["experiment"]).to_pylist() if n is not None]
    return choose_experiment(names, logs_dir, wanted)


def experiment_users(expo: pa.Table, experiment: str) -> ExposureUsers:
    """Exposures of ``experiment`` → users (rows with a null user, arm or timestamp are dropped)."""
    t = expo.filter(pc.equal(expo["experiment"], experiment)).drop_null()
    return exposure_users(t["user_id"].combine_chunks(), t["arm"].combine_chunks(), np.asarray(t["ts"]))


def search_segments(logs_dir: Path, cfg: AggregateConfig) -> Segments:
    """Query segments: ``query_segments.parquet`` when present, else ranked search volume."""
    custom = read_custom_segments(logs_dir)
    if custom is not None:
        return custom_segments(custom)
    dicts, counts, nulls = [], [], 0
    for b in prefetch(_batches(table_files(logs_dir, SEARCHES), ["query"], ["query"])):
        col = b.column(0)
        if not pa.types.is_dictionary(col.type):
            col = col.dictionary_encode()
        idx = col.indices
        nulls += idx.null_count
        dicts.append(col.dictionary.cast(pa.string()))
        counts.append(np.bincount(np.asarray(idx.drop_null()), minlength=len(col.dictionary)))
    if not dicts:
        return query_segments(pa.array([], pa.string()), np.zeros(0, np.int64), nulls, cfg.head_share, cfg.torso_share)
    per = pa.table({"query": pa.concat_arrays(dicts), "n": pa.array(np.concatenate(counts).astype(np.int64))})
    per = per.group_by("query").aggregate([("n", "sum")])
    return query_segments(per["query"].combine_chunks(), np.asarray(per["n_sum"]), nulls, cfg.head_share,
                          cfg.torso_share)


def _max_day_from_stats(logs_dir: Path, start: int) -> int | None:
    """Largest event day per the parquet footers' timestamp statistics (``None`` when any is missing)."""
    top = None
    for table in (IMPRESSIONS, CLICKS, SEARCHES):
        for f in table_files(logs_dir, table):
            md = pq.ParquetFile(f).metadata
            names = [md.schema.column(i).name for i in range(md.num_columns)]
            if "timestamp" not in names:
                return None
            j = names.index("timestamp")
            for rg in range(md.num_row_groups):
                st = md.row_group(rg).column(j).statistics
                if st is None or not st.has_min_max:
                    if md.row_group(rg).num_rows:
                        return None
                    continue
                mx = st.max
                us = int(pa.scalar(mx, pa.timestamp("us", tz="UTC")).value) if isinstance(mx, datetime) else int(mx)
                top = us if top is None else max(top, us)
    return None if top is None else max(0, (top - start) // DAY_US)


EVENT_COLUMNS = {IMPRESSIONS: [], CLICKS: ["dwell_s"], SEARCHES: ["is_related"]}


def _count_batch(b: pa.RecordBatch, table: str, counter: EventCounter, users: StringCodes, segments: Segments,
                 seg_lookup: tuple, long_click_s: float) -> int | None:
    """Count one record batch; returns its largest valid timestamp when ``table`` is searches."""
    ts, valid = ts_micros(b.column(2))
    end = None
    if table == SEARCHES and len(ts):
        m = ts if valid is None else ts[valid]
        end = int(m.max()) if m.size else None
    u = users.lookup(b.column(0), dtype=counter.key_dtype)
    seg = segments.of(b.column(1), seg_lookup)
    if table == IMPRESSIONS:
        flags = [(0, None)]
    elif table == CLICKS:
        dwell = b.column(3).cast(pa.float64())
        d = np.asarray(dwell.fill_null(-np.inf) if dwell.null_count else dwell)
        flags = [(1, None), (2, (d >= long_click_s) | np.isnan(d))]  # NaN >= x is true in SQL ordering
    else:
        flags = [(3, None), (4, bool_values(b.column(3)))]
    counter.add(u, seg, ts, valid, flags)
    return end


def count_events(logs_dir: Path, counter: EventCounter, segments: Segments, long_click_s: float) -> int | None:
    """Stream the three event tables into ``counter`` (a background thread decodes the next batch while
    numpy counts this one); returns the largest search timestamp (µs)."""
    users = StringCodes(counter.users.user_ids)
    seg_lookup = segments.lookup()
    end = None
    for table, extra in EVENT_COLUMNS.items():
        cols = ["user_id", "query", "timestamp", *extra]
        for b in prefetch(_batches(table_files(logs_dir, table), cols, ["user_id", "query"])):
            top = _count_batch(b, table, counter, users, segments, seg_lookup, long_click_s)
            end = top if end is None or (top is not None and top > end) else end
    return end


def _iso(us: int | None, aware: bool) -> str:
    if us is None:
        return "None"
    t = datetime(1970, 1, 1, tzinfo=timezone.utc if aware else None) + timedelta(microseconds=us)
    return str(t)


def _tz_aware(logs_dir: Path, table: str) -> bool:
    t = pq.read_schema(table_files(logs_dir, table)[0]).field("timestamp").type
    return getattr(t, "tz", None) is not None


def aggregate_stream(logs_dir: Path, out_dir: Path, cfg: AggregateConfig, t0: float,
                     fallback_if_large: bool = False) -> AggregateResult | None:
    """Aggregate ``logs_dir`` into ``out_dir``; with ``fallback_if_large`` returns ``None`` (write nothing)
    when the dense counters would exceed half of ``cfg.memory_limit`` (checked before and while counting)."""
    expo = _read_exposures(logs_dir)
    experiment = pick_experiment(expo, logs_dir, cfg.experiment)
    users = experiment_users(expo, experiment)
    del expo
    segments = search_segments(logs_dir, cfg)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for t in (IMPRESSIONS, CLICKS, SEARCHES)
               for f in table_files(logs_dir, t))
    dtype = np.int32 if rows < 2**31 else np.int64  # no cell can exceed the number of events
    budget = parse_bytes(cfg.memory_limit) // 2 if fallback_if_large else None
    max_day = _max_day_from_stats(logs_dir, users.start or 0)
    n_days = (max_day + 1) if max_day is not None else 1
    if budget is not None and counter_bytes(len(users.first_ts), len(segments.names), n_days, dtype) > budget:
        n_days = 1  # the footers may count far-off events of users outside the experiment: grow on demand
    try:
        counter = EventCounter(users, len(segments.names), cfg.pre_period_days, n_days, dtype, max_bytes=budget)
        end = count_events(logs_dir, counter, segments, cfg.long_click_s)
    except CountersTooLarge:
        return None
    users_path, days_path = out_dir / "users.parquet", out_dir / "user_days.parquet"
    for path, schema, parts in ((users_path, USERS_SCHEMA, counter.users_tables(experiment, segments.names)),
                                (days_path, USER_DAYS_SCHEMA, counter.user_days_tables(experiment))):
        # strings are dictionary arrays in memory; without the arrow schema readers see plain strings
        with pq.ParquetWriter(path, schema, compression="zstd", store_schema=False) as writer:
            for part in parts:
                writer.write_table(part)
    running_days = counter.running_days
    del counter
    pa.default_memory_pool().release_unused()  # hand the batches' and counters' pages back before the analysis
    return AggregateResult(
        users_path=users_path, user_days_path=days_path, experiment=experiment, arms=users.arm_counts(),
        start=_iso(users.start, _tz_aware(logs_dir, EXPOSURES)), end=_iso(end, _tz_aware(logs_dir, SEARCHES)),
        running_days=running_days, multi_arm_users_excluded=users.multi_arm_excluded,
        seconds=time.perf_counter() - t0, config=asdict(cfg), engine="numpy",
    )
