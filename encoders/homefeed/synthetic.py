"""A seeded synthetic homefeed: users with drifting interest mixtures engaging with the synthetic catalogue.

``write_synthetic_homefeed(out_dir, config)`` writes ``pins.parquet`` (the catalogue of
:func:`encoders.data.synthetic.build_catalogue`, with frozen embeddings), ``events.parquet``,
``user_interests.parquet``, ``pin_interests.parquet`` and ``homefeed_dataset.json``. Same config →
identical tables.

How users behave (each piece is something a retrieval model can or cannot exploit):

* **Core interests** — 1–3 product types, mostly within 1–2 categories, engaged all period long
  (a user's long-term taste: recent history may miss them, a user ID embedding can hold them).
* **Journeys** — transient interests (a product type, mean ``journey_days`` long) that dominate
  while active. The next journey follows the previous one through a fixed *successor* map over
  product types (drill → tool set → workbench …, from the catalogue's occasions and categories)
  with probability ``successor_rate`` — drift that a model can learn and a mean of recent pins
  cannot anticipate.
* **Style** — with probability ``style_rate`` a user prefers the attributes of one style (rattan,
  jute … for boho) across all types (×``style_boost``), and one brand (×``brand_boost``).
* **Pin life cycle** — every pin has a birth day and a freshness half-life; it is engaged in
  proportion to ``popularity × freshness(t) × the user's affinity``. A time-decayed engagement score
  therefore finds the pins that will be engaged next (the serving-corpus selection).
* **Exploration** — a share ``explore_rate`` of events lands on globally popular fresh pins
  (what a popularity baseline can catch).
* **Actions** — each positive event is a ``closeup``, ``click`` or ``save`` with per-user propensities;
  ``hide_rate`` extra ``hide`` events land on popular pins outside the user's interests.

Declared interests (``user_interests``) are the categories of a user's core types (each declared
with probability ``declare_rate``) plus, sometimes, one unrelated category (noise). A pin's
interest is its category. Interest ids read ``cat:<category>``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from encoders.data import synthetic_catalogue as cat
from encoders.data.synthetic import EPOCH, Catalogue, build_catalogue
from encoders.homefeed.schema import (
    EVENTS,
    PIN_INTERESTS,
    USER_INTERESTS,
    HomefeedPaths,
    write_homefeed_table,
)
from encoders.homefeed.synthetic_pins import successor_map, write_homefeed_pins

DATASET_FILE = "homefeed_dataset.json"


@dataclass(frozen=True)
class HomefeedSynthConfig:
    """Sizes and behaviour knobs of the generator (``*_rate`` are probabilities, ``*_days`` days)."""

    n_users: int = field(default=4_000, metadata={"help": "users (default {default})"})
    n_pins: int = field(default=6_000, metadata={"help": "pins of the synthetic catalogue (default {default})"})
    events_per_user: float = field(default=60.0, metadata={
        "help": "mean positive events per user over the period (log-normal spread; default {default})"})
    days: int = field(default=90, metadata={"help": "length of the event period in days (default {default})"})
    seed: int = field(default=0, metadata={"help": "random seed (default {default})"})
    pin_embeddings: Literal["minilm", "structured"] = field(default="minilm", metadata={
        "help": "frozen pin space: 'minilm' = `searchsage pins embed` of the titles (the packaged MiniLM, "
        "~200 pins/s on 2 cores, cached), 'structured' = a cheap deterministic embedding built from the "
        "pin's category, type, attribute and brand (tests, scale checks; default {default})"})
    structured_dim: int = field(default=64, metadata={"help": "D of the structured embeddings (default {default})"})
    pins_from: str | None = field(default=None, metadata={
        "metavar": "DIR", "help": "take pins.parquet (with its frozen embedding) from this dataset directory instead "
        "of embedding the titles: a `searchsage data synth` catalogue of the same --n-pins and --seed (the demo "
        "runs homefeed over its own pins this way; --pin-embeddings is then unused)"})
    journey_days: float = field(default=12.0, metadata={"help": "mean journey length in days (default {default})"})
    journey_gap_days: float = field(default=8.0, metadata={
        "help": "mean gap between journeys in days (default {default})"})
    journey_weight: float = field(default=2.0, metadata={
        "help": "weight of an active journey against the core interests' total of 1 (default {default})"})
    successor_rate: float = field(default=0.7, metadata={
        "help": "probability that a journey follows its predecessor's successor type (default {default})"})
    style_rate: float = field(default=0.6, metadata={"help": "share of users with a style (default {default})"})
    style_boost: float = field(default=6.0, metadata={"help": "affinity of a style's attributes (default {default})"})
    brand_boost: float = field(default=3.0, metadata={"help": "affinity of the user's brand (default {default})"})
    explore_rate: float = field(default=0.1, metadata={
        "help": "share of events on globally popular fresh pins (default {default})"})
    hide_rate: float = field(default=0.05, metadata={"help": "hide events per positive event (default {default})"})
    declare_rate: float = field(default=0.8, metadata={
        "help": "probability a core category is declared as an interest (default {default})"})
    pin_half_life_days: float = field(default=25.0, metadata={
        "help": "median freshness half-life of a pin in days (default {default})"})
    threads: int = field(default=2, metadata={"help": "torch threads for --pin-embeddings minilm (default {default})"})
    progress: bool = field(default=True, metadata={"help": "show progress bars", "flag": None})

    def __post_init__(self) -> None:
        from encoders.homefeed.config import check_ranges

        check_ranges(self, positive=("n_users", "n_pins", "events_per_user", "days", "structured_dim",
                                     "journey_days", "journey_gap_days", "pin_half_life_days", "threads"),
                     probabilities=("successor_rate", "style_rate", "explore_rate", "declare_rate"),
                     non_negative=("journey_weight", "style_boost", "brand_boost", "hide_rate"))


def interest_of_category(category: str) -> str:
    """The interest id of a catalogue category (``cat:kitchen``)."""
    return f"cat:{category}"


@dataclass
class _World:
    """What every user shares: the catalogue, pin life cycles and per-(day, pin) base weights."""

    catalogue: Catalogue
    categories: list[str]
    type_category: np.ndarray  # (T,) category index of each product type
    pins_of_type: list[np.ndarray]
    base: list[np.ndarray]  # per type: (days, n_t) popularity × freshness
    global_cdf: np.ndarray  # (days, N) cumulative popularity × freshness over all pins
    successor: np.ndarray  # (T,) type → successor type


def _build_world(config: HomefeedSynthConfig, rng: np.random.Generator) -> _World:
    catalogue = build_catalogue(config.n_pins, rng)
    n = len(catalogue.pin_ids)
    categories = list(cat.CATEGORIES)
    type_category = np.array([categories.index(t.category) for t in catalogue.types])
    birth = rng.uniform(-config.days, config.days, size=n)
    half_life = config.pin_half_life_days * rng.lognormal(0.0, 0.5, size=n)
    day = np.arange(config.days, dtype=np.float64)[:, None] + 0.5
    age = day - birth[None, :]
    fresh = np.where(age >= 0, np.exp(-np.log(2.0) * np.maximum(age, 0) / half_life[None, :]), 0.0)
    weight = catalogue.popularity[None, :] * fresh + 1e-12  # (days, N)
    pins_of_type = [np.flatnonzero(catalogue.type_idx == t) for t in range(len(catalogue.types))]
    base = [weight[:, idx] for idx in pins_of_type]
    return _World(catalogue, categories, type_category, pins_of_type, base, np.cumsum(weight, axis=1),
                  successor_map(catalogue.types, rng))


def _journeys(core: np.ndarray, world: _World, config: HomefeedSynthConfig,
              rng: np.random.Generator) -> list[tuple[int, float, float]]:
    """A user's journeys ``(type, start day, end day)`` over the period, chained by the successor map."""
    n_types = len(world.pins_of_type)
    out: list[tuple[int, float, float]] = []
    t = -rng.exponential(config.journey_days)  # the user may be mid-journey when the period starts
    prev = int(world.successor[core[int(rng.integers(len(core)))]])
    while t < config.days:
        if out and rng.random() < config.successor_rate:
            kind = int(world.successor[prev])
        elif rng.random() < 0.5:  # related to a core interest
            kind = int(world.successor[core[int(rng.integers(len(core)))]])
        else:
            kind = int(rng.integers(n_types))
        dur = 3.0 + rng.exponential(config.journey_days)
        out.append((kind, t, t + dur))
        prev = kind
        t += dur + rng.exponential(config.journey_gap_days)
    return out


def _affinity(world: _World, config: HomefeedSynthConfig, rng: np.random.Generator) -> np.ndarray:
    """A user's per-pin affinity ``(N,)``: style attributes × ``style_boost``, the brand × ``brand_boost``."""
    c = world.catalogue
    aff = np.ones(len(c.pin_ids))
    if rng.random() < config.style_rate:
        style = list(cat.STYLES)[int(rng.integers(len(cat.STYLES)))]
        aff[np.isin(c.attr, cat.STYLES[style])] *= config.style_boost
    brands = np.unique(c.brand)
    aff[c.brand == brands[int(rng.integers(len(brands)))]] *= config.brand_boost
    return aff


def _user_events(u: int, world: _World, config: HomefeedSynthConfig, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """One user's events: ``(pin rows, times in days, action codes (0 closeup, 1 click, 2 save, 3 hide),
    declared interest ids)``."""
    n_types = len(world.pins_of_type)
    home = int(rng.integers(len(world.categories)))
    n_core = int(rng.integers(1, 4))
    same_cat = np.flatnonzero(world.type_category == home)
    core = np.array([int(rng.choice(same_cat)) if rng.random() < 0.7 else int(rng.integers(n_types))
                     for _ in range(n_core)])
    journeys = _journeys(core, world, config, rng)
    aff = _affinity(world, config, rng)
    n = max(2, int(rng.poisson(config.events_per_user * rng.lognormal(-0.125, 0.5))))
    times = np.sort(rng.uniform(0.0, config.days, size=n))
    # the type of each event: core types (total weight 1) + the journey active at that time
    kinds = core[rng.integers(len(core), size=n)]
    for kind, start, end in journeys:
        active = (times >= start) & (times < end)
        take = active & (rng.random(n) < config.journey_weight / (1.0 + config.journey_weight))
        kinds = np.where(take, kind, kinds)
    days = np.minimum(times.astype(np.int64), config.days - 1)
    pins = np.empty(n, dtype=np.int64)
    for kind in np.unique(kinds):
        sel = np.flatnonzero(kinds == kind)
        cdf = np.cumsum(world.base[kind][days[sel]] * aff[world.pins_of_type[kind]][None, :], axis=1)
        pick = (cdf < rng.random(len(sel))[:, None] * cdf[:, -1:]).sum(axis=1)
        pins[sel] = world.pins_of_type[kind][np.minimum(pick, cdf.shape[1] - 1)]
    explore = np.flatnonzero(rng.random(n) < config.explore_rate)
    if explore.size:
        g = world.global_cdf[days[explore]]
        pins[explore] = np.minimum((g < rng.random(explore.size)[:, None] * g[:, -1:]).sum(axis=1), g.shape[1] - 1)
    propensity = rng.dirichlet([5.0, 3.0, 2.0])
    actions = rng.choice(3, size=n, p=propensity)
    n_hide = int(rng.binomial(n, min(1.0, config.hide_rate)))
    if n_hide:
        h_times = rng.uniform(0.0, config.days, size=n_hide)
        h_days = np.minimum(h_times.astype(np.int64), config.days - 1)
        g = world.global_cdf[h_days]
        h_pins = np.minimum((g < rng.random(n_hide)[:, None] * g[:, -1:]).sum(axis=1), g.shape[1] - 1)
        mine = np.isin(world.catalogue.type_idx[h_pins], np.concatenate([core, [j[0] for j in journeys]]))
        h_pins, h_times = h_pins[~mine], h_times[~mine]
        pins, times = np.concatenate([pins, h_pins]), np.concatenate([times, h_times])
        actions = np.concatenate([actions, np.full(len(h_pins), 3)])
    declared = {world.categories[int(world.type_category[k])] for k in core if rng.random() < config.declare_rate}
    if rng.random() < 0.2:
        declared.add(world.categories[int(rng.integers(len(world.categories)))])
    return pins, times, actions, sorted(interest_of_category(c) for c in declared)


def generate_events(config: HomefeedSynthConfig) -> tuple[Catalogue, pa.Table, pa.Table, pa.Table]:
    """The catalogue and the ``events``, ``user_interests`` and ``pin_interests`` tables (pure, seeded)."""
    from tqdm.auto import tqdm

    from encoders.homefeed.schema import ACTIONS

    rng = np.random.default_rng(config.seed)
    world = _build_world(config, rng)
    c = world.catalogue
    width = len(str(config.n_users - 1))
    users, pins, times, actions, i_users, i_ids = [], [], [], [], [], []
    for u in tqdm(range(config.n_users), desc="synthetic users", unit="user", disable=not config.progress):
        p, t, a, declared = _user_events(u, world, config, rng)
        uid = f"u{u:0{width}d}"
        users.append(np.full(len(p), u))
        pins.append(p)
        times.append(t)
        actions.append(a)
        i_users += [uid] * len(declared)
        i_ids += declared
    user = np.concatenate(users)
    t = np.concatenate(times)
    order = np.lexsort((user, t))
    micros = np.round(t[order] * 86_400e6).astype(np.int64)
    stamps = np.datetime64(EPOCH.replace(tzinfo=None), "us") + micros.astype("timedelta64[us]")
    pin_ids = np.array(c.pin_ids, dtype=object)
    events = pa.table({
        "user_id": pa.array([f"u{x:0{width}d}" for x in user[order]], pa.string()),
        "pin_id": pa.array(pin_ids[np.concatenate(pins)[order]], pa.string()),
        "action": pa.array(np.array(ACTIONS, dtype=object)[np.concatenate(actions)[order]], pa.string()),
        "timestamp": pa.array(stamps, pa.timestamp("us", tz="UTC")),
    })
    interests = pa.table({"user_id": pa.array(i_users, pa.string()), "interest_id": pa.array(i_ids, pa.string())})
    pin_interest = pa.table({
        "pin_id": pa.array(c.pin_ids, pa.string()),
        "interest_id": pa.array([interest_of_category(c.types[int(t)].category) for t in c.type_idx], pa.string()),
    })
    return c, events, interests, pin_interest


def write_synthetic_homefeed(out_dir: str | Path, config: HomefeedSynthConfig) -> HomefeedPaths:
    """Generate with ``config`` and write the homefeed dataset directory; returns its paths."""
    t0 = time.perf_counter()
    catalogue, events, interests, pin_interest = generate_events(config)
    paths = HomefeedPaths(Path(out_dir))
    paths.root.mkdir(parents=True, exist_ok=True)
    write_homefeed_pins(paths, catalogue, config)
    write_homefeed_table(events, paths.events, EVENTS)
    write_homefeed_table(interests, paths.user_interests, USER_INTERESTS)
    write_homefeed_table(pin_interest, paths.pin_interests, PIN_INTERESTS)
    counts = {a: int(n) for a, n in zip(*np.unique(events.column("action").to_numpy(zero_copy_only=False),
                                                   return_counts=True), strict=True)}
    stats = {"kind": "synthetic-homefeed", "config": {k: v for k, v in asdict(config).items()
                                                      if k not in ("progress", "threads")},
             "users": config.n_users, "pins": len(catalogue.pin_ids), "events": events.num_rows,
             "events_by_action": counts, "user_interest_rows": interests.num_rows,
             "seconds": round(time.perf_counter() - t0, 2)}
    (paths.root / DATASET_FILE).write_text(json.dumps(stats, indent=2))
    return paths
