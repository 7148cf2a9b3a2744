"""A deterministic synthetic catalogue, query log and engagement set (the demo data).

``generate_synthetic(out_dir, seed=0)`` writes the three dataset tables plus
``synthetic_queries.parquet`` (one row per distinct query: its form, clean form before a typo,
latent intent, popularity rank and weight) and ``dataset.json`` (parameters and counts).
The same arguments give byte-identical files.

How it is built
  * **Pins**: ``brand + line + specs + product type + "in" + attribute`` titles, e.g.
    "Behr Classic 1 gal. Satin Exterior Paint in Navy Blue", over the product types of
    :mod:`encoders.data.synthetic_catalogue` (12 categories, ~80 types). Each pin has a popularity
    (brand rank Zipf × log-normal noise) that engagement follows.
  * **Queries** express a latent intent: a product type (by name or by a synonym no title uses),
    optionally narrowed by attribute, brand, spec or a *style word* ("boho" → rattan/jute/macrame);
    or an *occasion* ("gift for dad" → drills, tool sets, grills, watches) that only engagement
    connects to products. Some get filler words ("best", "near me") and some a typo (swap, drop,
    double or replaced letter). Popularity is Zipf over a rank: generic queries tend to the head,
    typo'd and padded ones to the tail.
  * **Engagements**: every query gets at least one; the rest are drawn Zipf by rank. Each picks a
    pin matching the intent exactly, weighted by pin popularity. Task ``shopping`` (action
    ``long_click``) or ``organic`` (action ``save``), with a mix that depends on the query form and
    category (styles/occasions/fashion lean organic, brands/specs/tools lean shopping).
  * **Judgments** (eval queries by default, see :func:`encoders.data.split.is_eval_query`):
    grade 3 = matches the intent, 2 = same product type, 1 = same category (a sample of at most
    ``grade1_per_query`` pins).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from encoders.data import synthetic_catalogue as cat
from encoders.data.pin_embeddings import write_pins
from encoders.data.schema import ENGAGEMENTS, JUDGMENTS, TIMESTAMP, DatasetPaths, write_table
from encoders.data.split import is_eval_query
from encoders.normalize import normalize_query

LINES = ("Classic", "Pro", "Essentials", "Signature", "Select", "Plus", "Elite")
EPOCH = datetime(2024, 1, 1, tzinfo=timezone.utc)
DAYS = 90
QUERIES_FILE = "synthetic_queries.parquet"

#: form → (share of generated queries, share of engagements that are organic, popularity scale)
FORMS: dict[str, tuple[float, float, float]] = {
    "type": (0.16, 0.5, 0.5),
    "attr": (0.22, 0.5, 1.0),
    "brand": (0.12, 0.2, 1.0),
    "spec": (0.10, 0.15, 1.2),
    "style": (0.22, 0.8, 1.0),
    "occasion": (0.18, 0.7, 0.6),
}
ORGANIC_SHIFT = {"apparel": 0.15, "footwear": 0.15, "decor": 0.15, "tools": -0.15, "hardware": -0.15}


@dataclass(frozen=True)
class SyntheticConfig:
    """Sizes and knobs of the generator (``n_*`` are counts; rates are probabilities)."""

    n_pins: int = 20_000
    n_queries: int = 3_000
    n_engagements: int = 60_000
    seed: int = 0
    zipf_s: float = 0.9
    typo_rate: float = 0.12
    modifier_rate: float = 0.25
    synonym_rate: float = 0.55
    judgments: Literal["eval", "all"] = "eval"
    grade1_per_query: int = 30
    consider_scale: float = 2.0
    consider_power: float = 2.0


PRESETS: dict[str, SyntheticConfig] = {
    "default": SyntheticConfig(),
    "small": SyntheticConfig(n_pins=500, n_queries=150, n_engagements=1_500),
}


@dataclass(frozen=True)
class Intent:
    """What a query wants: pins whose type is in ``types`` and (if ``field``) whose field is in ``values``."""

    types: tuple[int, ...]
    field: str | None = None
    values: tuple[str, ...] = ()

    def describe(self, types: list[cat.ProductType]) -> str:
        names = "+".join(types[t].name for t in self.types)
        return names if self.field is None else f"{names} [{self.field}: {' / '.join(self.values)}]"


@dataclass
class Catalogue:
    """Pins as parallel arrays (length N): type index, category, brand, spec text, attribute, popularity."""

    types: list[cat.ProductType]
    pin_ids: list[str]
    titles: list[str]
    type_idx: np.ndarray
    brand: np.ndarray
    spec: list[tuple[str, ...]]
    attr: np.ndarray
    popularity: np.ndarray

    def grade3(self, intent: Intent) -> np.ndarray:
        """Boolean mask ``(N,)`` of pins that match ``intent`` exactly."""
        idx = np.flatnonzero(np.isin(self.type_idx, intent.types))
        if intent.field is not None:
            wanted = set(intent.values)
            if intent.field == "spec":
                idx = np.array([i for i in idx if wanted.intersection(self.spec[i])], dtype=np.int64)
            else:
                values = self.brand if intent.field == "brand" else self.attr
                idx = np.array([i for i in idx if values[i] in wanted], dtype=np.int64)
        mask = np.zeros(len(self.pin_ids), dtype=bool)
        mask[idx] = True
        return mask


def build_catalogue(n_pins: int, rng: np.random.Generator) -> Catalogue:
    """Draw ``n_pins`` pins, product types balanced, titles unique where the vocabulary allows."""
    types = cat.product_types()
    brand_rank: dict[tuple[str, str], int] = {}
    for c, (brands, _) in cat.CATEGORIES.items():
        for r, b in enumerate(brands):
            brand_rank[c, b] = r
    type_idx = rng.permutation(np.arange(n_pins) % len(types))
    seen: set[str] = set()
    titles, brands, specs, attrs, pops = [], [], [], [], []
    for t in type_idx:
        pt = types[int(t)]
        cat_brands = cat.CATEGORIES[pt.category][0]
        for _ in range(6):
            b = cat_brands[int(rng.integers(len(cat_brands)))]
            line = LINES[int(rng.integers(len(LINES)))]
            sp = tuple(slot[int(rng.integers(len(slot)))] for slot in pt.specs)
            a = pt.palette[int(rng.integers(len(pt.palette)))]
            title = " ".join([b, line, *sp, pt.name, "in", a])
            if title not in seen:
                break
        seen.add(title)
        titles.append(title)
        brands.append(b)
        specs.append(sp)
        attrs.append(a)
        pops.append((1.0 / (1 + brand_rank[pt.category, b])) * float(rng.lognormal(0.0, 0.8)))
    return Catalogue(
        types, [f"p{i:06d}" for i in range(n_pins)], titles, type_idx.astype(np.int64),
        np.array(brands, dtype=object), specs, np.array(attrs, dtype=object), np.array(pops),
    )


def add_typo(text: str, rng: np.random.Generator) -> str:
    """Corrupt one word of length >= 4: swap two neighbours, drop, double or replace a letter."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    i = candidates[int(rng.integers(len(candidates)))]
    w = words[i]
    j = int(rng.integers(1, len(w) - 1))
    op = int(rng.integers(4))
    if op == 0 and w[j] != w[j + 1]:
        w = w[:j] + w[j + 1] + w[j] + w[j + 2 :]
    elif op == 1:
        w = w[:j] + w[j + 1 :]
    elif op == 2:
        w = w[:j] + w[j] + w[j:]
    else:
        letters = "abcdefghijklmnopqrstuvwxyz".replace(w[j], "")
        w = w[:j] + letters[int(rng.integers(len(letters)))] + w[j + 1 :]
    words[i] = w
    return " ".join(words)


def _noun(pt: cat.ProductType, rng: np.random.Generator, synonym_rate: float) -> str:
    if rng.random() < synonym_rate:
        return pt.synonyms[int(rng.integers(len(pt.synonyms)))]
    return pt.name.lower()


def _pick(seq: tuple[str, ...] | list[str], rng: np.random.Generator) -> str:
    return seq[int(rng.integers(len(seq)))]


def draw_query(
    catalogue: Catalogue, form: str, rng: np.random.Generator, config: SyntheticConfig
) -> tuple[str, Intent]:
    """One (clean query text, intent) of the given form; text before modifiers and typos."""
    types = catalogue.types
    t = int(rng.integers(len(types)))
    pt = types[t]
    noun = _noun(pt, rng, config.synonym_rate)
    if form == "type":
        return noun, Intent((t,))
    if form == "attr":
        a = _pick(pt.palette, rng)
        return f"{a.lower()} {noun}", Intent((t,), "attr", (a,))
    if form == "brand":
        b = _pick(cat.CATEGORIES[pt.category][0], rng)
        return f"{b.lower()} {noun}", Intent((t,), "brand", (b,))
    if form == "spec":
        if not pt.specs:
            return noun, Intent((t,))
        v = _pick(pt.specs[int(rng.integers(len(pt.specs)))], rng)
        return f"{v.lower().replace('.', '')} {noun}", Intent((t,), "spec", (v,))
    if form == "style":
        styles = [s for s, vals in cat.STYLES.items() if set(vals) & set(pt.palette)]
        if not styles:
            return noun, Intent((t,))
        s = _pick(styles, rng)
        values = tuple(v for v in cat.STYLES[s] if v in pt.palette)
        return f"{_pick(cat.STYLE_ALIASES[s], rng)} {noun}", Intent((t,), "attr", values)
    if form == "occasion":
        phrases, names = cat.OCCASIONS[int(rng.integers(len(cat.OCCASIONS)))]
        index = {p.name: i for i, p in enumerate(types)}
        return _pick(phrases, rng), Intent(tuple(index[n] for n in names))
    raise ValueError(f"unknown query form {form!r}; expected one of {sorted(FORMS)}")


def build_queries(catalogue: Catalogue, config: SyntheticConfig, rng: np.random.Generator) -> list[dict]:
    """``n_queries`` distinct normalised queries with intent, form, typo flag, rank and Zipf weight."""
    forms = list(FORMS)
    shares = np.array([FORMS[f][0] for f in forms])
    shares = shares / shares.sum()
    out: dict[str, dict] = {}
    attempts = 0
    while len(out) < config.n_queries:
        attempts += 1
        if attempts > 200 * config.n_queries:
            raise ValueError(
                f"could only make {len(out)} distinct queries with matching pins out of n_queries="
                f"{config.n_queries}; use more pins (n_pins={config.n_pins}) or fewer queries"
            )
        form = forms[int(rng.choice(len(forms), p=shares))]
        clean, intent = draw_query(catalogue, form, rng, config)
        if not catalogue.grade3(intent).any():
            continue
        padded = rng.random() < config.modifier_rate
        if padded:
            word = _pick(cat.PREFIXES, rng) if rng.random() < 0.5 else _pick(cat.SUFFIXES, rng)
            padded = word not in clean
            if padded:
                clean = f"{word} {clean}" if word in cat.PREFIXES else f"{clean} {word}"
        clean = normalize_query(clean)
        typo = rng.random() < config.typo_rate
        text = normalize_query(add_typo(clean, rng)) if typo else clean
        typo = typo and text != clean
        if text in out:
            continue
        scale = FORMS[form][2] * (2.0 if padded else 1.0) * (3.0 if typo else 1.0)
        out[text] = {"query": text, "clean_query": clean, "form": form, "typo": typo, "padded": padded,
                     "intent": intent, "key": float(rng.lognormal(0.0, 0.6)) * scale}
    rows = sorted(out.values(), key=lambda r: (r["key"], r["query"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
        row["weight"] = 1.0 / rank**config.zipf_s
    return rows


def build_engagements(
    catalogue: Catalogue, queries: list[dict], config: SyntheticConfig, rng: np.random.Generator
) -> pa.Table:
    """At least one engagement per query, the rest Zipf by rank, on pins that match the intent.

    A query's ``n`` engagements go to its *consideration set* (what a results page shows):
    ``2 + consider_scale·ln(1+n)`` intent pins drawn by ``popularity**consider_power``; within it,
    shopping picks follow popularity and organic picks its square root.
    """
    if config.n_engagements < len(queries):
        raise ValueError(f"n_engagements={config.n_engagements} must be >= n_queries={len(queries)}")
    w = np.array([q["weight"] for q in queries])
    counts = 1 + rng.multinomial(config.n_engagements - len(queries), w / w.sum())
    cols: dict[str, list] = {"query": [], "pin_id": [], "task": [], "action": []}
    for q, n in zip(queries, counts, strict=True):
        q["n_engagements"] = int(n)
        cand = np.flatnonzero(catalogue.grade3(q["intent"]))
        shown_pop = catalogue.popularity[cand] ** config.consider_power
        size = min(len(cand), 2 + int(config.consider_scale * np.log1p(n)))
        cand = cand[np.sort(rng.choice(len(cand), size=size, replace=False, p=shown_pop / shown_pop.sum()))]
        category = catalogue.types[q["intent"].types[0]].category
        p_organic = float(np.clip(FORMS[q["form"]][1] + ORGANIC_SHIFT.get(category, 0.0), 0.05, 0.95))
        organic = rng.random(n) < p_organic
        for is_org, k in ((True, int(organic.sum())), (False, int((~organic).sum()))):
            if k == 0:
                continue
            pop = catalogue.popularity[cand] ** (0.5 if is_org else 1.0)
            picks = cand[rng.choice(len(cand), size=k, p=pop / pop.sum())]
            cols["query"] += [q["query"]] * k
            cols["pin_id"] += [catalogue.pin_ids[i] for i in picks]
            cols["task"] += ["organic" if is_org else "shopping"] * k
            cols["action"] += ["save" if is_org else "long_click"] * k
    seconds = rng.integers(0, DAYS * 86_400, size=len(cols["query"]))
    order = np.argsort(seconds, kind="stable")
    ts = np.datetime64(EPOCH.replace(tzinfo=None), "us") + seconds[order].astype("timedelta64[s]")
    table = pa.table({k: pa.array([v[i] for i in order], pa.string()) for k, v in cols.items()})
    return table.append_column("timestamp", pa.array(ts.astype("datetime64[us]"), pa.timestamp("us")).cast(TIMESTAMP))


def build_judgments(
    catalogue: Catalogue, queries: list[dict], config: SyntheticConfig, rng: np.random.Generator
) -> pa.Table:
    """Graded judgments 3/2/1 (intent / product type / category sample) for eval (or all) queries."""
    cat_names = sorted({t.category for t in catalogue.types})
    type_cat = np.array([cat_names.index(t.category) for t in catalogue.types])
    categories = type_cat[catalogue.type_idx]
    qs, ps, gs = [], [], []
    for q in queries:
        if config.judgments == "eval" and not is_eval_query(q["query"]):
            continue
        intent: Intent = q["intent"]
        g3 = catalogue.grade3(intent)
        g2 = np.isin(catalogue.type_idx, intent.types) & ~g3
        cats = np.unique(type_cat[list(intent.types)])
        g1 = np.flatnonzero(np.isin(categories, cats) & ~g3 & ~g2)
        if len(g1) > config.grade1_per_query:
            g1 = np.sort(rng.choice(g1, size=config.grade1_per_query, replace=False))
        for grade, idx in ((3.0, np.flatnonzero(g3)), (2.0, np.flatnonzero(g2)), (1.0, g1)):
            qs += [q["query"]] * len(idx)
            ps += [catalogue.pin_ids[i] for i in idx]
            gs += [grade] * len(idx)
    return pa.table({"query": pa.array(qs, pa.string()), "pin_id": pa.array(ps, pa.string()),
                     "grade": pa.array(gs, pa.float64())})


def generate_synthetic(
    out_dir: str | Path,
    n_pins: int = 20_000,
    n_queries: int = 3_000,
    seed: int = 0,
    n_engagements: int | None = None,
    **overrides: object,
) -> DatasetPaths:
    """Write a synthetic dataset directory; same arguments → byte-identical files.

    ``n_engagements`` defaults to 20 per query. Other :class:`SyntheticConfig` fields
    (``zipf_s``, ``typo_rate``, ``judgments``...) can be passed as keyword arguments.
    """
    config = SyntheticConfig(
        n_pins=n_pins, n_queries=n_queries, seed=seed,
        n_engagements=n_engagements if n_engagements is not None else 20 * n_queries, **overrides,  # type: ignore[arg-type]
    )
    return write_synthetic(out_dir, config)


def write_synthetic(out_dir: str | Path, config: SyntheticConfig) -> DatasetPaths:
    """Generate with ``config`` and write pins/engagements/judgments + query metadata + ``dataset.json``."""
    if config.n_pins < 1 or config.n_queries < 1:
        raise ValueError(f"n_pins and n_queries must be positive, got {config.n_pins} and {config.n_queries}")
    rng = np.random.default_rng(config.seed)
    catalogue = build_catalogue(config.n_pins, rng)
    queries = build_queries(catalogue, config, rng)
    engagements = build_engagements(catalogue, queries, config, rng)
    judgments = build_judgments(catalogue, queries, config, rng)
    paths = DatasetPaths(Path(out_dir))
    write_pins(paths, pa.table({"pin_id": catalogue.pin_ids, "text": catalogue.titles}))
    write_table(engagements, paths.engagements, ENGAGEMENTS)
    write_table(judgments, paths.judgments, JUDGMENTS)
    meta = pa.table({
        "query": [q["query"] for q in queries],
        "clean_query": [q["clean_query"] for q in queries],
        "form": [q["form"] for q in queries],
        "typo": [q["typo"] for q in queries],
        "intent": [q["intent"].describe(catalogue.types) for q in queries],
        "rank": pa.array([q["rank"] for q in queries], pa.int64()),
        "weight": [q["weight"] for q in queries],
        "n_engagements": pa.array([q["n_engagements"] for q in queries], pa.int64()),
        "is_eval": [is_eval_query(q["query"]) for q in queries],
    })
    pq.write_table(meta, paths.root / QUERIES_FILE, compression="zstd")
    stats = {"kind": "synthetic", "config": asdict(config), "pins": len(catalogue.pin_ids),
             "queries": len(queries), "engagements": engagements.num_rows, "judgments": judgments.num_rows,
             "eval_queries": int(sum(meta.column("is_eval").to_pylist())),
             "product_types": len(catalogue.types)}
    (paths.root / "dataset.json").write_text(json.dumps(stats, indent=2))
    return paths
