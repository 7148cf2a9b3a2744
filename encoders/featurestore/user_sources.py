"""The offline side of ``user_embedding``: a homefeed dataset inside the repository, and the users source.

:func:`ingest_homefeed` (``searchsage feast ingest --homefeed DIR``) checks a homefeed dataset directory
(docs/homefeed.md: ``events.parquet``, ``pins.parquet`` with the frozen ``embedding``, optional
``user_interests.parquet``) and merges it into the repository:

* ``data/homefeed/`` (:data:`~encoders.featurestore.contract.HOMEFEED_DIR`) — what the user UDF reads:
  events (union; a row seen before is kept once), pins (by ``pin_id``; the incoming vector wins) and
  declared interests (a user present in the incoming table gets exactly its rows);
* ``data/users.parquet`` (:data:`~encoders.featurestore.contract.USERS_SOURCE`, the Feast source): one row
  ``(user_id, event_timestamp)`` per user whose latest event changed, stamped at that latest event — the
  time the user's vector is *as of* (:mod:`encoders.featurestore.user_udfs`). Rows of earlier ingests stay
  (a history of refreshes); Feast keeps the latest per user online.

Running it again with the same directory changes nothing (no file is rewritten). Event times are the
events' own, so a first materialisation of historical data needs an explicit window:
``feast -c REPO materialize START END --views user_embedding`` (the report prints it); later rows newer than
the last materialisation are picked up by ``materialize-incremental``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from encoders.featurestore.contract import HOMEFEED_DIR, USER_JOIN_KEY, USER_VIEW, USERS_SOURCE
from encoders.featurestore.sources import TS, IngestError, _write

EVENT_COLUMNS = ("user_id", "pin_id", "action", "timestamp")
_TS_TYPE = pa.timestamp("us", tz="UTC")


@dataclass
class UserIngestReport:
    """What one :func:`ingest_homefeed` did."""

    source: Path
    events_new: int = 0
    events_total: int = 0
    pins: int = 0
    users_new: int = 0
    users_refreshed: int = 0
    users_unchanged: int = 0
    first: datetime | None = None
    last: datetime | None = None

    @property
    def rows_added(self) -> int:
        return self.users_new + self.users_refreshed

    def summary(self) -> str:
        span = (f", as of their latest events {self.first.isoformat()} .. {self.last.isoformat()}"
                if self.first is not None and self.last is not None else "")
        return (f"{self.source}: users: {self.users_new} new, {self.users_refreshed} with new events, "
                f"{self.users_unchanged} unchanged{span}; events: {self.events_new} new of {self.events_total}; "
                f"{self.pins} pins with frozen vectors")

    def materialize_command(self, repo: str | Path) -> str | None:
        """The stock command that materialises the rows this ingest added (None when it added none)."""
        if self.first is None:
            return None
        start = self.first.replace(microsecond=0, tzinfo=None).isoformat()
        return f"feast -c {repo} materialize {start} $(date -u +%FT%T) --views {USER_VIEW}"


def _read(path: Path) -> pa.Table | None:
    return pq.read_table(path) if path.is_file() else None


def _check_incoming(data_dir: Path) -> tuple[pa.Table, pa.Table, pa.Table | None]:
    """(pins, events, user_interests or None) of a homefeed dataset directory, validated."""
    from encoders.data.schema import PINS, DataValidationError, read_table
    from encoders.homefeed.schema import EVENTS, USER_INTERESTS, HomefeedPaths, read_homefeed_table

    paths = HomefeedPaths(data_dir)
    if not data_dir.is_dir():
        raise IngestError(f"--homefeed {data_dir}: no such directory (expected a homefeed dataset: events.parquet, "
                          "pins.parquet with embedding; `searchsage homefeed generate` writes one)")
    try:
        pins = read_table(paths.pins, PINS)
        if "embedding" not in pins.column_names:
            raise DataValidationError(paths.pins, "no embedding column: the user tower reads the pins' frozen "
                                      "vectors", column="embedding")
        events = read_homefeed_table(paths.events, EVENTS, pin_ids=pins.column("pin_id").combine_chunks())
        interests = (read_homefeed_table(paths.user_interests, USER_INTERESTS)
                     if paths.user_interests.exists() else None)
    except DataValidationError as exc:
        raise IngestError(str(exc)) from None
    return pins.select(["pin_id", "text", "embedding"]), events, interests


def _merge_pins(old: pa.Table | None, new: pa.Table, where: Path) -> pa.Table:
    if old is None:
        return new
    width = {len(v) for v in (old.column("embedding")[0], new.column("embedding")[0]) if v.is_valid}
    if len(width) > 1:
        raise IngestError(f"{where}: its pins are {sorted(width)[0]}-d and the incoming ones "
                          f"{sorted(width)[-1]}-d; one repository holds one pin space")
    keep = pc.invert(pc.is_in(old.column("pin_id"), value_set=new.column("pin_id").combine_chunks()))
    return pa.concat_tables([old.select(new.column_names).filter(keep).cast(new.schema), new])


def _distinct_events(tables: list[pa.Table]) -> pa.Table:
    merged = pa.concat_tables([t.select(list(EVENT_COLUMNS)).cast(tables[-1].schema) for t in tables])
    distinct = merged.group_by(list(EVENT_COLUMNS), use_threads=False).aggregate([])
    return distinct.select(list(EVENT_COLUMNS)).sort_by([("user_id", "ascending"), ("timestamp", "ascending"),
                                                         ("pin_id", "ascending"), ("action", "ascending")])


def _latest(table: pa.Table, user_col: str, ts_col: str) -> dict[str, object]:
    if table.num_rows == 0:
        return {}
    agg = table.group_by(user_col, use_threads=False).aggregate([(ts_col, "max")])
    return dict(zip(agg.column(user_col).to_pylist(), agg.column(f"{ts_col}_max").to_pylist(), strict=True))


def ingest_homefeed(repo: str | Path, data_dir: str | Path) -> UserIngestReport:
    """Merge the homefeed dataset ``data_dir`` into ``repo`` (see the module docstring)."""
    from encoders.data.schema import PINS, write_table
    from encoders.homefeed.schema import EVENTS, USER_INTERESTS, HomefeedPaths, write_homefeed_table

    repo, data_dir = Path(repo), Path(data_dir)
    pins, events, interests = _check_incoming(data_dir)
    target = HomefeedPaths(repo / HOMEFEED_DIR)
    source = repo / USERS_SOURCE
    report = UserIngestReport(source)
    old_events = _read(target.events)
    merged_events = _distinct_events([t for t in (old_events, events) if t is not None])
    report.events_total = merged_events.num_rows
    report.events_new = merged_events.num_rows - (old_events.num_rows if old_events is not None else 0)
    merged_pins = _merge_pins(_read(target.pins), pins, target.pins)
    report.pins = merged_pins.num_rows

    users_table = _read(source)
    stored = _latest(users_table, USER_JOIN_KEY, TS) if users_table is not None else {}
    latest = _latest(merged_events, "user_id", "timestamp")
    fresh = {u: t for u, t in latest.items() if stored.get(u) != t}
    report.users_new = sum(u not in stored for u in fresh)
    report.users_refreshed = len(fresh) - report.users_new
    report.users_unchanged = len(latest) - len(fresh)

    old_pins = _read(target.pins)
    pins_changed = old_pins is None or not old_pins.select(merged_pins.column_names).cast(merged_pins.schema).equals(
        merged_pins)
    old_interests = _read(target.user_interests)
    merged_interests = old_interests
    if interests is not None:
        keep = (None if old_interests is None else
                pc.invert(pc.is_in(old_interests.column("user_id"), value_set=interests.column("user_id").unique())))
        merged_interests = interests if keep is None else pa.concat_tables(
            [old_interests.filter(keep).cast(interests.schema), interests])
    interests_changed = merged_interests is not None and (
        old_interests is None or not old_interests.cast(merged_interests.schema).equals(merged_interests))
    # the UDF's inputs first, then the rows that ask for them
    if pins_changed:
        write_table(merged_pins, target.pins, PINS)
    if report.events_new or old_events is None:
        write_homefeed_table(merged_events, target.events, EVENTS)
    if interests_changed:
        write_homefeed_table(merged_interests, target.user_interests, USER_INTERESTS)
    if fresh:
        ids = sorted(fresh)
        rows = pa.table({USER_JOIN_KEY: pa.array(ids, pa.string()),
                         TS: pa.array([fresh[u] for u in ids], _TS_TYPE)})
        if users_table is not None:
            rows = pa.concat_tables([users_table.select([USER_JOIN_KEY, TS]).cast(rows.schema), rows])
        _write(source, rows)
        times = [fresh[u] for u in ids]
        report.first, report.last = min(times), max(times)  # type: ignore[type-var]
    return report
