"""Offline evaluation of the user tower against baselines, with and without the time-decayed corpus.

:func:`evaluate_homefeed` embeds every eval user as of the split time T (the user's last ``history``
positive events before T), retrieves from a pin index and reports Recall@10/50/100 of the post-T
engagements on pins the user had not engaged before (:mod:`encoders.homefeed.retrieval`), overall and
per action. Systems:

* ``tower`` — the run's user tower; ``no_id_embeddings`` / ``no_feature_crossing`` — ablation runs
  found in ``RUN/ablations/`` (``searchsage homefeed train --ablations``);
* ``mean_recent`` — the L2-normalised mean of the user's last ``history`` pin vectors;
* ``popularity`` — every user gets the pins with the highest time-decayed engagement score.

Indexes (corpora): ``all`` pins; ``decayed`` — the ``corpus_size`` pins with the highest
time-decayed engagement score at T (:mod:`encoders.homefeed.corpus`); ``count`` — the same size by
all-time engagement count (the no-decay control). Each baseline is compared with the tower, and each
corpus with ``all``, by a paired bootstrap over users (:func:`encoders.eval.bootstrap.paired_bootstrap_diff`).
Conditional retrieval is measured on the eval pairs whose pin has an interest: the user embedded with
that interest as the condition vs unconditioned.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from encoders.eval.bootstrap import paired_bootstrap_diff
from encoders.homefeed.config import ABLATIONS, ABLATIONS_DIR, HomefeedEvalConfig
from encoders.homefeed.corpus import decayed_scores, select_corpus
from encoders.homefeed.dataset import HomefeedData, load_homefeed
from encoders.homefeed.events import format_time
from encoders.homefeed.features import history_window
from encoders.homefeed.retrieval import KS, EvalTargets, RecallResult, recall_at_k, retrieve
from encoders.runtime.vectors import l2_normalize


def _compare(a: RecallResult, b: RecallResult, reps: int, seed: int, slice_: str = "overall",
             users: np.ndarray | None = None) -> dict[str, Any]:
    """Paired bootstrap of Recall@k (a − b) for every k, over users (``users`` groups rows into users)."""
    out = {}
    for k in KS:
        na, nb, den = a.hits[slice_][k], b.hits[slice_][k], a.pairs[slice_]
        if users is not None:
            na, nb, den = (np.bincount(users, weights=x) for x in (na, nb, den))
        out[str(k)] = paired_bootstrap_diff(na, nb, den, reps=reps, seed=seed).to_dict()
    return out


def mean_recent_vectors(data: HomefeedData, targets: EvalTargets, history: int) -> np.ndarray:
    """``(Q, D)``: the L2-normalised mean of each eval user's last ``history`` pin vectors before T."""
    pins, mask, _, _ = history_window(data.log, targets.users, targets.n_before,
                                      np.full(len(targets.users), targets.split), history)
    return l2_normalize((data.pin_matrix[pins] * mask[..., None]).sum(axis=1))


def _conditional(run: Any, data: HomefeedData, targets: EvalTargets, unconditional: np.ndarray,
                 config: HomefeedEvalConfig) -> dict[str, Any] | None:
    """Recall of pairs with an interest: the user conditioned on the pin's interest vs unconditioned."""
    from encoders.homefeed.embed import embed_requests

    rows = data.pin_interest_rows(run.interest_vocab)
    overall = np.flatnonzero(targets.pair_action == -1)
    interest = rows[targets.pair_pin[overall]]
    overall = overall[interest > 0]
    if not len(overall):
        return None
    keys = np.unique(np.stack([targets.pair_user[overall], rows[targets.pair_pin[overall]]], axis=1), axis=0)
    req_user = keys[:, 0]
    req = {(int(u), int(i)): n for n, (u, i) in enumerate(keys)}
    pair_req = np.array([req[int(targets.pair_user[p]), int(rows[targets.pair_pin[p]])] for p in overall])
    sub = EvalTargets(targets.split, targets.users[req_user], targets.n_before[req_user], pair_req,
                      targets.pair_pin[overall], np.full(len(overall), -1))
    cond = embed_requests(run, data, sub.users, targets.split, keys[:, 1], progress=config.progress)
    index = np.arange(len(data.pin_ids))
    k = max(KS)
    res_c = recall_at_k(sub, retrieve(data.log, sub, index, k, cond, data.pin_matrix))
    res_u = recall_at_k(sub, retrieve(data.log, sub, index, k, unconditional[req_user], data.pin_matrix))
    return {"requests": len(keys), "pairs": len(overall), "corpus": "all",
            "conditional": res_c.recall["overall"], "unconditional": res_u.recall["overall"],
            "comparison": _compare(res_c, res_u, config.bootstrap_reps, config.seed, users=req_user)}


def evaluate_homefeed(config: HomefeedEvalConfig) -> dict[str, Any]:
    """Run the evaluation of the module docstring; returns the report (a JSON-ready dict)."""
    import torch

    from encoders.homefeed.embed import embed_requests
    from encoders.homefeed.run import load_run

    t0 = time.perf_counter()
    previous = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        run = load_run(config.run)
        data = load_homefeed(config.data)
        if data.dim != run.config.pin_dim:
            raise ValueError(f"{config.data}: pin dimension {data.dim} != the run's {run.config.pin_dim}")
        targets = EvalTargets.build(data.log, run.split, config.max_users, config.seed)
        if not len(targets.users):
            raise ValueError(f"no eval users: nobody has positive events both before and after the split "
                             f"{format_time(run.split)} (on pins new to them)")
        n = len(data.pin_ids)
        size = min(n, config.corpus_size or max(1, n // 3))
        decayed = decayed_scores(data.log, n, run.split, config.half_life_days)
        corpora = {"all": np.arange(n), "decayed": select_corpus(decayed, size),
                   "count": select_corpus(decayed_scores(data.log, n, run.split, None), size)}
        vectors: dict[str, np.ndarray] = {
            "tower": embed_requests(run, data, targets.users, run.split, progress=config.progress)}
        ablation_root = Path(config.run) / ABLATIONS_DIR
        for name in ABLATIONS:
            if (ablation_root / name / "tower.pt").exists():
                vectors[name] = embed_requests(load_run(ablation_root / name), data, targets.users, run.split)
        vectors["mean_recent"] = mean_recent_vectors(data, targets, run.config.history)
        k = max(KS)
        results: dict[str, dict[str, RecallResult]] = {}
        for name, vec in vectors.items():
            results[name] = {c: recall_at_k(targets, retrieve(data.log, targets, rows, k, vec, data.pin_matrix))
                             for c, rows in corpora.items()}
        results["popularity"] = {c: recall_at_k(targets, retrieve(data.log, targets, rows, k, global_scores=decayed))
                                 for c, rows in corpora.items()}
        in_corpus = {c: np.isin(targets.pair_pin, rows) for c, rows in corpora.items()}
        report: dict[str, Any] = {
            "data": str(config.data), "run": str(config.run), "split_iso": format_time(run.split),
            "model_version": run.model_version, "users": len(targets.users),
            "pairs": {s: int(m.sum()) for s, m in targets.slices().items()}, "ks": list(KS),
            "half_life_days": config.half_life_days,
            "corpora": {c: {"size": len(rows), "coverage": {s: float(in_corpus[c][m].mean())
                                                            for s, m in targets.slices().items()}}
                        for c, rows in corpora.items()},
            "systems": {name: {c: r.recall for c, r in per.items()} for name, per in results.items()},
            "comparisons": [], "corpus_effect": [],
        }
        for name in [s for s in results if s != "tower"]:
            for c in corpora:
                report["comparisons"].append({"a": "tower", "b": name, "corpus": c, "slice": "overall",
                                              "ci": _compare(results["tower"][c], results[name][c],
                                                             config.bootstrap_reps, config.seed)})
        for name in ("tower", "mean_recent"):
            for a, b in (("decayed", "all"), ("decayed", "count")):
                report["corpus_effect"].append({"system": name, "a": a, "b": b, "slice": "overall",
                                                "ci": _compare(results[name][a], results[name][b],
                                                               config.bootstrap_reps, config.seed)})
        if config.conditional:
            report["conditional"] = _conditional(run, data, targets, vectors["tower"], config)
        report["seconds"] = round(time.perf_counter() - t0, 2)
        return report
    finally:
        torch.set_num_threads(previous)
