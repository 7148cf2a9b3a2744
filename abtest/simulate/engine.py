"""The vectorised experiment simulator: users, searches, a position-biased click model, dwell.

World (all numpy, no Python loop over events):

* user ``u`` has a search rate ``λ_u ~ Gamma(shape, mean/shape)`` per day and a click propensity
  ``c_u ~ LogNormal(0, σ)`` — both persist across days, so the pre-period predicts the experiment
  period (what CUPED exploits). Searches per (user, day) ~ Poisson(λ_u); query ~ popularity.
* a search shows ``depth = min(K, min_depth + Geometric(p_stop))`` results (impressions) from the
  arm's ranking for the query; result at 0-based position ``i`` with relevance ``r ∈ [0, 1]``
  (normalised judged grade; unjudged = 0) is clicked with probability
  ``min(1, c_u · (i + 1)^-η · (a0 + a1 · r) · (1 + effect·[treatment]))``;
* a click's dwell is ``LogNormal(log(d0) + d1·r, σ_d)`` seconds; ``>= long_click_s`` is a long click;
* a search without a long click triggers a related search (``is_related``) with probability
  ``p_related`` — a nearby query, served and clicked the same way (one level deep);
* days ``-pre_days..-1`` are the pre-period (everyone sees the control ranking); from day 0 users
  are split ``treatment_share`` to treatment; a user's exposure is logged at their first
  experiment-period search; ``srm`` drops that share of treatment exposures (a logging bug).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DAY_US = 86_400_000_000


@dataclass
class Arena:
    """What arms serve: ``Q`` queries, ``P`` pins, per-arm ``(Q, K)`` pin index (-1 = none) and relevance.

    ``popularity (Q,)`` sums to 1; ``pins[arm] (Q, K) int32``; ``relevance[arm] (Q, K) float64 in [0, 1]``.
    """

    queries: list[str]
    pin_ids: list[str]
    popularity: np.ndarray
    pins: dict[str, np.ndarray]
    relevance: dict[str, np.ndarray]


@dataclass
class SimConfig:
    """Simulation knobs (defaults give ≈1.2 searches/user/day and ≈8 impressions/search)."""

    n_users: int = 10_000
    days: int = 14
    pre_days: int = 7
    seed: int = 0
    experiment: str = "searchsage"
    control: str = "control"
    treatment: str = "treatment"
    treatment_share: float = 0.5
    effect: float = 0.0
    srm: float = 0.0
    start_us: int = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    search_rate_mean: float = 1.2
    search_rate_shape: float = 1.5
    click_sigma: float = 0.5
    min_depth: int = 4
    p_stop: float = 0.2
    eta: float = 0.6
    a0: float = 0.02
    a1: float = 0.35
    dwell_d0: float = 12.0
    dwell_d1: float = 1.6
    dwell_sigma: float = 0.8
    long_click_s: float = 35.0
    p_related: float = 0.3
    extra: dict = field(default_factory=dict)


@dataclass
class Events:
    """Integer-coded events of one simulation chunk (index arrays into users/queries/pins).

    Searches ``(S,)``: user, session, query, ts_us, related. Impressions ``(I,)``: search index,
    position, pin. Clicks ``(C,)``: impression index, dwell_s. Exposures ``(E,)``: user, arm, ts_us.
    """

    s_user: np.ndarray
    s_session: np.ndarray
    s_query: np.ndarray
    s_ts: np.ndarray
    s_related: np.ndarray
    i_search: np.ndarray
    i_pos: np.ndarray
    i_pin: np.ndarray
    c_imp: np.ndarray
    c_dwell: np.ndarray
    e_user: np.ndarray
    e_treat: np.ndarray
    e_ts: np.ndarray


def _serve(arena: Arena, cfg: SimConfig, rng: np.random.Generator, query: np.ndarray, treat: np.ndarray,
           clickiness: np.ndarray) -> tuple[np.ndarray, ...]:
    """Impressions and clicks for searches ``(S,)``; returns index arrays and per-search long-click flag."""
    k = arena.pins[cfg.control].shape[1]
    depth = np.minimum(k, cfg.min_depth + rng.geometric(cfg.p_stop, size=query.size) - 1)
    search = np.repeat(np.arange(query.size), depth)
    starts = np.cumsum(depth) - depth
    pos = np.arange(search.size) - np.repeat(starts, depth)
    q, t = query[search], treat[search]
    pin = np.where(t, arena.pins[cfg.treatment][q, pos], arena.pins[cfg.control][q, pos])
    rel = np.where(t, arena.relevance[cfg.treatment][q, pos], arena.relevance[cfg.control][q, pos])
    keep = pin >= 0
    search, pos, pin, rel, t = search[keep], pos[keep], pin[keep], rel[keep], t[keep]
    p = clickiness[search] * (pos + 1.0) ** -cfg.eta * (cfg.a0 + cfg.a1 * rel) * (1.0 + cfg.effect * t)
    clicked = rng.random(search.size) < np.minimum(p, 1.0)
    c_idx = np.flatnonzero(clicked)
    dwell = rng.lognormal(np.log(cfg.dwell_d0) + cfg.dwell_d1 * rel[c_idx], cfg.dwell_sigma)
    long_search = np.zeros(query.size, dtype=bool)
    long_search[search[c_idx[dwell >= cfg.long_click_s]]] = True
    return search, pos, pin, c_idx, dwell, long_search


def simulate_events(arena: Arena, cfg: SimConfig, user_lo: int = 0, user_hi: int | None = None) -> Events:
    """Simulate users ``[user_lo, user_hi)`` over pre + experiment days (deterministic per chunk)."""
    user_hi = cfg.n_users if user_hi is None else user_hi
    rng = np.random.default_rng([cfg.seed, user_lo])
    n = user_hi - user_lo
    rate = rng.gamma(cfg.search_rate_shape, cfg.search_rate_mean / cfg.search_rate_shape, size=n)
    clickiness = rng.lognormal(-cfg.click_sigma**2 / 2, cfg.click_sigma, size=n)
    is_treat_user = rng.random(n) < cfg.treatment_share
    n_days = cfg.pre_days + cfg.days
    counts = rng.poisson(rate[:, None], size=(n, n_days))
    flat = counts.ravel()
    cell = np.repeat(np.arange(flat.size), flat)
    user, day = cell // n_days, cell % n_days - cfg.pre_days
    s_ts = cfg.start_us + day * DAY_US + rng.integers(0, DAY_US - 3_600_000_000, size=cell.size)
    query = rng.choice(len(arena.queries), p=arena.popularity, size=cell.size).astype(np.int64)
    treat = is_treat_user[user] & (day >= 0)
    ck = clickiness[user]
    search, pos, pin, c_idx, dwell, long_search = _serve(arena, cfg, rng, query, treat, ck)
    # related searches: disappointed searches (no long click) reformulate to a nearby query
    rel_of = np.flatnonzero(~long_search & (rng.random(query.size) < cfg.p_related))
    r_query = np.clip(query[rel_of] + rng.integers(-3, 4, size=rel_of.size), 0, len(arena.queries) - 1)
    r_search, r_pos, r_pin, r_c, r_dwell, _ = _serve(arena, cfg, rng, r_query, treat[rel_of], ck[rel_of])
    s_all = query.size
    session = np.concatenate([np.arange(s_all), rel_of])  # chunk-local; a related search keeps its session
    i_search = np.concatenate([search, r_search + s_all])
    c_imp = np.concatenate([c_idx, r_c + search.size])
    # exposure: the first experiment-period search of each user (minus SRM-lost treatment exposures)
    exp_mask = day >= 0
    first = np.full(n, np.iinfo(np.int64).max)
    np.minimum.at(first, user[exp_mask], s_ts[exp_mask])
    e_user = np.flatnonzero(first < np.iinfo(np.int64).max)
    lost = is_treat_user[e_user] & (rng.random(e_user.size) < cfg.srm)
    e_user = e_user[~lost]
    return Events(
        s_user=np.concatenate([user, user[rel_of]]) + user_lo,
        s_session=session,
        s_query=np.concatenate([query, r_query]),
        s_ts=np.concatenate([s_ts, s_ts[rel_of] + 60_000_000]),
        s_related=np.concatenate([np.zeros(s_all, dtype=bool), np.ones(rel_of.size, dtype=bool)]),
        i_search=i_search,
        i_pos=np.concatenate([pos, r_pos]).astype(np.int32),
        i_pin=np.concatenate([pin, r_pin]).astype(np.int64),
        c_imp=c_imp,
        c_dwell=np.concatenate([dwell, r_dwell]),
        e_user=e_user + user_lo,
        e_treat=is_treat_user[e_user],
        e_ts=first[e_user],
    )


def synthetic_arena(n_queries: int = 2_000, n_pins: int = 20_000, k: int = 20, seed: int = 0,
                    treatment_gain: float = 0.0, zipf: float = 1.0) -> Arena:
    """A dataset-free arena with random relevance (for benchmarks and calibration).

    Control relevance ~ Beta(1, 3) sorted descending; treatment adds ``treatment_gain`` (clipped).
    """
    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, n_queries + 1) ** zipf
    rel = -np.sort(-rng.beta(1.0, 3.0, size=(n_queries, k)), axis=1)
    pins = rng.integers(0, n_pins, size=(n_queries, k)).astype(np.int32)
    return Arena(
        queries=[f"query {i:05d}" for i in range(n_queries)],
        pin_ids=[f"p{i:06d}" for i in range(n_pins)],
        popularity=pop / pop.sum(),
        pins={"control": pins, "treatment": pins.copy()},
        relevance={"control": rel, "treatment": np.clip(rel + treatment_gain, 0.0, 1.0)},
    )
