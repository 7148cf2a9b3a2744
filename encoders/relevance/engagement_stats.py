"""Per-pin engagement statistics: the ``pin_engagement`` Feast view and the student's out-of-fold copy.

Statistics (one row per engaged pin, :data:`STAT_COLUMNS`):

``eng_count``             engagements of the pin (all actions)
``eng_long_click``        engagements with action ``long_click``
``eng_save``              engagements with action ``save``
``eng_count_30d``         engagements in the ``window_days`` (30) before the as-of time
``eng_distinct_queries``  distinct queries that engaged the pin
``eng_per_query``         smoothed rate ``eng_count / (eng_distinct_queries + smoothing)`` (repeat
                          engagement per engaging query, shrunk towards 0 for pins seen by few queries)

**Leakage.** Only engagements of ``train``-split queries count (:func:`encoders.relevance.pairs.split_of`):
``eval`` queries are reported on and ``validation`` queries choose the student, so neither may leak
its own engagement into the features it is measured with. On Home Depot every engagement *is* a
judged pair (relevance >= 2.67), so a training pair's ``eng_count`` would contain its own label; the
student's training rows therefore get :func:`out_of_fold_stats`: train queries are hashed into
``folds`` groups and a pair gets the statistics of the other groups, counts rescaled by
``folds / (folds - 1)`` to the served scale. Served (and validation/eval) rows read the view, i.e.
statistics over all training queries.

**Windows.** The as-of time is the latest engagement timestamp of the file (the same for every
fold). 30 days is a month of a 90-day synthetic log — recent enough to show a trend, long enough
that tail pins are not all zero. Home Depot timestamps are synthetic (file row id in seconds), so
the whole file spans less than a day and ``eng_count_30d == eng_count`` there: the window carries
no information on that dataset.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from encoders.relevance.pairs import split_of

#: The view's name, its offline source (relative to the repository) and its features, in order.
VIEW_NAME = "pin_engagement"
SOURCE_FILE = "data/pin_engagement.parquet"
STAT_COLUMNS: tuple[str, ...] = (
    "eng_count", "eng_long_click", "eng_save", "eng_count_30d", "eng_distinct_queries", "eng_per_query",
)
#: Integer-valued statistics (Int64 in Feast); the rest are Float64.
COUNT_COLUMNS: tuple[str, ...] = STAT_COLUMNS[:5]


@dataclass(frozen=True)
class EngagementStatsConfig:
    """``window_days``: the recent-engagement window; ``smoothing``: pseudo-queries in ``eng_per_query``;
    ``folds``: query folds for the student's out-of-fold training statistics; ``modulo``: the split hash."""

    window_days: float = 30.0
    smoothing: float = 1.0
    folds: int = 5
    modulo: int = 10

    def __post_init__(self) -> None:
        if self.window_days <= 0 or self.smoothing <= 0:
            raise ValueError(f"window_days and smoothing must be > 0, got {self.window_days}, {self.smoothing}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")


def training_queries(queries: pd.Series, modulo: int = 10) -> np.ndarray:
    """``(N,)`` bool: which (normalised) queries belong to the ``train`` split."""
    uniq, inverse = np.unique(queries.astype(str).to_numpy(), return_inverse=True)
    keep = np.array([split_of(q, modulo) == "train" for q in uniq], dtype=bool)
    return keep[inverse] if len(uniq) else np.zeros(len(queries), dtype=bool)


def query_folds(queries: list[str] | np.ndarray, folds: int) -> np.ndarray:
    """``(N,)`` int64 fold of each query: ``md5("fold:" + query) % folds`` (independent of the split hash)."""
    uniq, inverse = np.unique(np.asarray(queries, dtype=object).astype(str), return_inverse=True)
    f = np.array([int(hashlib.md5(f"fold:{q}".encode()).hexdigest(), 16) % folds for q in uniq], dtype=np.int64)
    return f[inverse] if len(uniq) else np.zeros(0, dtype=np.int64)


def _stats(frame: pd.DataFrame, as_of: pd.Timestamp, config: EngagementStatsConfig, scale: float = 1.0) -> pd.DataFrame:
    if frame.empty:
        return pd.DataFrame({"pin_id": pd.Series([], dtype=str),
                             **{c: pd.Series([], dtype=np.float64) for c in STAT_COLUMNS}})
    recent = frame["timestamp"] > as_of - pd.Timedelta(days=config.window_days)
    grouped = frame.assign(
        long_click=(frame["action"] == "long_click").astype(np.int64),
        save=(frame["action"] == "save").astype(np.int64),
        recent=recent.astype(np.int64),
    ).groupby("pin_id", sort=True)
    out = pd.DataFrame({
        "eng_count": grouped.size(),
        "eng_long_click": grouped["long_click"].sum(),
        "eng_save": grouped["save"].sum(),
        "eng_count_30d": grouped["recent"].sum(),
        "eng_distinct_queries": grouped["query"].nunique(),
    }).astype(np.float64)
    out["eng_per_query"] = out["eng_count"] / (out["eng_distinct_queries"] + config.smoothing)
    out[list(COUNT_COLUMNS)] *= scale
    return out.reset_index()


def _as_of(engagements: pd.DataFrame) -> pd.Timestamp:
    return engagements["timestamp"].max() if len(engagements) else pd.Timestamp(0, tz="UTC")


def pin_engagement_stats(engagements: pd.DataFrame, config: EngagementStatsConfig | None = None) -> pd.DataFrame:
    """Served statistics: one row per pin engaged by a ``train``-split query.

    ``engagements``: columns ``query, pin_id, action, timestamp`` (the dataset table). Returns
    ``pin_id`` + :data:`STAT_COLUMNS` (float64; counts are whole numbers), sorted by ``pin_id``.
    """
    config = config or EngagementStatsConfig()
    train = engagements[training_queries(engagements["query"], config.modulo)]
    return _stats(train, _as_of(engagements), config)


def out_of_fold_stats(engagements: pd.DataFrame, queries: list[str], pin_ids: list[str],
                      config: EngagementStatsConfig | None = None) -> np.ndarray:
    """Statistics for the student's *training* pairs ``(queries[i], pin_ids[i])`` → ``(N, S)`` float64.

    Pair ``i`` gets the statistics of the training queries outside its query's fold, counts scaled
    by ``folds / (folds - 1)``; its own query's engagement (and so its own label on Home Depot)
    never enters. Columns follow :data:`STAT_COLUMNS`; pins without engagement get zeros.
    """
    config = config or EngagementStatsConfig()
    as_of = _as_of(engagements)
    train = engagements[training_queries(engagements["query"], config.modulo)]
    eng_fold = query_folds(train["query"].to_numpy(), config.folds)
    pair_fold = query_folds(list(queries), config.folds)
    out = np.zeros((len(queries), len(STAT_COLUMNS)), dtype=np.float64)
    scale = config.folds / (config.folds - 1)
    for f in range(config.folds):
        rows = np.flatnonzero(pair_fold == f)
        if rows.size:
            table = _stats(train[eng_fold != f], as_of, config, scale)
            out[rows] = stats_matrix(table, [pin_ids[i] for i in rows])
    return out


def stats_matrix(table: pd.DataFrame, pin_ids: list[str]) -> np.ndarray:
    """Rows of a statistics table for ``pin_ids`` → ``(N, S)`` float64; unknown pins get zeros."""
    idx = pd.Index(table["pin_id"].astype(str)).get_indexer(pd.Index(pin_ids, dtype=object))
    values = np.vstack([table[list(STAT_COLUMNS)].to_numpy(np.float64), np.zeros((1, len(STAT_COLUMNS)))])
    return values[np.where(idx >= 0, idx, len(table))]


# --- I/O -----------------------------------------------------------------------------------------
def read_engagements(dataset_dir: str | Path) -> pd.DataFrame:
    """The dataset's ``engagements.parquet`` (validated) as a DataFrame with UTC timestamps."""
    from encoders.data.schema import ENGAGEMENTS, DatasetPaths, DataValidationError, read_table

    path = DatasetPaths(Path(dataset_dir)).engagements
    if not path.is_file():
        raise DataValidationError(path, "file not found: pin engagement statistics are computed from engagements")
    table = read_table(path, ENGAGEMENTS)  # validated: a missing column or bad row names itself
    return table.select(["query", "pin_id", "action", "timestamp"]).to_pandas()


@dataclass
class SourceWrite:
    """What :func:`write_stats_source` did: the file, its pins, and whether it changed."""

    path: Path
    pins: int
    changed: bool


def source_frame(stats: pd.DataFrame, when: datetime) -> pd.DataFrame:
    """The offline source rows: ``pin_id``, ``event_timestamp`` (``when``, UTC), counts as int64."""
    out = stats[["pin_id", *STAT_COLUMNS]].copy()
    out["pin_id"] = out["pin_id"].astype(str)
    for c in COUNT_COLUMNS:
        out[c] = np.rint(out[c]).astype(np.int64)
    out["eng_per_query"] = out["eng_per_query"].astype(np.float64)
    when = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    out.insert(1, "event_timestamp", pd.Series([when] * len(out), dtype="datetime64[us, UTC]"))
    return out.reset_index(drop=True)


def write_stats_source(repo: str | Path, stats: pd.DataFrame, when: datetime | None = None) -> SourceWrite:
    """Write ``REPO/data/pin_engagement.parquet`` (replacing it, never appending).

    Idempotent: when the file already holds the same statistics it is left untouched (same event
    time, so ``materialize-incremental`` has nothing new). Otherwise every row is stamped ``when``
    (default now, UTC) and the next ``feast materialize-incremental`` writes them to the online store.
    """
    path = Path(repo) / SOURCE_FILE
    frame = source_frame(stats, when or datetime.now(timezone.utc))
    if path.is_file():
        try:
            old = pd.read_parquet(path)
            same = list(old.columns) == list(frame.columns) and old.drop(columns="event_timestamp").equals(
                frame.drop(columns="event_timestamp"))
        except (OSError, ValueError):
            same = False
        if same:
            return SourceWrite(path, len(frame), changed=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    tmp.replace(path)
    return SourceWrite(path, len(frame), changed=True)
