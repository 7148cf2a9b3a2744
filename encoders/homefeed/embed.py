"""User embeddings from a trained run: the torch path every other consumer (evaluation, Feast) calls.

:func:`compute_user_embeddings` is the batch job a feature store materialises: given a run and a
dataset directory (or an events table), every user's ``(N_users, D)`` float32 vector as of a time,
in batches, with no side effects. :func:`embed_requests` is the general form (any users, any
reference times, optional interest conditions).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from encoders.homefeed.dataset import HomefeedData, load_homefeed
from encoders.homefeed.events import format_time, parse_time
from encoders.homefeed.features import build_batch
from encoders.homefeed.run import HomefeedRun, load_run


@dataclass
class UserEmbeddings:
    """``vectors (N, D)`` float32 L2-normalised, row i for ``user_ids[i]``, as of ``at_iso`` (UTC), made
    by ``model_version`` (conditioned on ``interest_id`` when not None)."""

    user_ids: list[str]
    vectors: np.ndarray
    model_version: str
    at_iso: str
    interest_id: str | None = None

    def to_table(self) -> pa.Table:
        """``user_id: string, embedding: list<float32>, model_version: string`` (a Feast-ready source)."""
        col = pa.FixedSizeListArray.from_arrays(pa.array(self.vectors.reshape(-1), pa.float32()),
                                                self.vectors.shape[1]).cast(pa.list_(pa.float32()))
        return pa.table({"user_id": pa.array(self.user_ids, pa.string()), "embedding": col,
                         "model_version": pa.array([self.model_version] * len(self.user_ids), pa.string())})


def embed_requests(run: HomefeedRun, data: HomefeedData, users: np.ndarray, at: float | np.ndarray,
                   condition_rows: np.ndarray | None = None, batch_size: int = 2048, progress: bool = False
                   ) -> np.ndarray:
    """``(B, D)`` float32 vectors of requests: ``users (B,)`` indices into ``data.log``, reference times
    ``at`` (days since epoch, scalar or ``(B,)``), ``condition_rows (B,)`` interest rows (default none)."""
    from tqdm.auto import tqdm

    log = data.log
    users = np.asarray(users, dtype=np.int64)
    at_arr = np.broadcast_to(np.asarray(at, dtype=np.float64), users.shape).copy()
    if np.ndim(at) == 0:
        n_before = log.count_before(float(at))[users]
    else:  # per-request times: count each request's user's events before its own time
        n_before = np.array([int(np.searchsorted(log.times[log.offsets[u]:log.offsets[u + 1]], t))
                             for u, t in zip(users.tolist(), at_arr.tolist(), strict=True)], dtype=np.int64)
    user_rows = run.user_vocab.rows(log.user_ids)
    bags = data.bags(run.interest_vocab)
    out = np.empty((len(users), run.config.pin_dim), dtype=np.float32)
    run.tower.eval()
    with torch.inference_mode():
        for s in tqdm(range(0, len(users), batch_size), desc="embed users", unit="batch", disable=not progress):
            sl = slice(s, s + batch_size)
            cond = None if condition_rows is None else condition_rows[sl]
            batch = build_batch(log, users[sl], n_before[sl], at_arr[sl], run.config.history, user_rows, bags, cond)
            inputs = {k: torch.from_numpy(v) for k, v in batch.inputs(data.pin_matrix).items()}
            out[sl] = run.tower(**inputs).numpy()
    return out


def compute_user_embeddings(run_dir: str | Path, data_dir: str | Path, *, events: pa.Table | None = None,
                            at: str | None = None, interest_id: str | None = None, batch_size: int = 2048,
                            threads: int | None = None, progress: bool = True) -> UserEmbeddings:
    """Every user's embedding ``(N_users, D)`` float32, in batches; nothing is written.

    ``run_dir``: a run of ``searchsage homefeed train``; ``data_dir``: the dataset (frozen pin vectors,
    declared interests; ``events`` replaces its ``events.parquet``). ``at``: ISO time the vectors are
    "as of" — only events before it count (default: just after the last event). ``interest_id``:
    condition every user on that interest (conditional retrieval). Users are the distinct users of
    the events, sorted.
    """
    run = load_run(run_dir)
    data = load_homefeed(data_dir, events=events)
    when = float(data.log.times.max()) + 1e-6 if at is None else parse_time(at, "at")
    cond = None
    if interest_id is not None:
        row = int(run.interest_vocab.rows([interest_id])[0])
        if row == 0:
            raise ValueError(f"interest_id {interest_id!r} is not in the run's interest vocabulary")
        cond = np.full(data.log.n_users, row, dtype=np.int64)
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        vectors = embed_requests(run, data, np.arange(data.log.n_users), when, cond, batch_size, progress)
    finally:
        torch.set_num_threads(previous)
    return UserEmbeddings(list(data.log.user_ids), vectors, run.model_version, format_time(when), interest_id)
