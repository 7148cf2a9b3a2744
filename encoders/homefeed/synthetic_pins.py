"""The pins of the synthetic homefeed: the catalogue's pins with a frozen embedding, and the type successor map.

Two frozen pin spaces:

* ``minilm`` — the titles embedded by the frozen pin tower stand-in (:func:`encoders.data.pin_embeddings.
  embed_pins`, the packaged MiniLM, D = 384), exactly as ``searchsage pins embed`` does; cached.
* ``structured`` — ``normalize(1.0·g_category + 1.2·g_type + 0.8·g_attribute + 0.4·g_brand + 0.5·noise)``
  with Gaussian vectors per category/type/attribute/brand (D = ``structured_dim``): deterministic,
  instant, and it carries the same structure the behaviour model uses (tests, scale checks).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from encoders.data import synthetic_catalogue as cat
from encoders.data.pin_embeddings import PIN_TOWER_FILE, PinTowerInfo, embed_pins, text_hash, write_pins
from encoders.data.schema import PINS, write_table
from encoders.data.synthetic import Catalogue

if TYPE_CHECKING:
    from encoders.homefeed.schema import HomefeedPaths
    from encoders.homefeed.synthetic import HomefeedSynthConfig


def successor_map(types: list[cat.ProductType], rng: np.random.Generator) -> np.ndarray:
    """``(T,)`` int64: for each product type, the type a user's next journey tends to move to.

    Drawn from the other types of an occasion the type belongs to (drill → tool set, gift ideas),
    else from its own category (sofa → coffee table).
    """
    index = {t.name: i for i, t in enumerate(types)}
    out = np.empty(len(types), dtype=np.int64)
    for i, t in enumerate(types):
        related = sorted({index[n] for _, names in cat.OCCASIONS if t.name in names for n in names} - {i})
        if not related:
            related = [j for j, o in enumerate(types) if o.category == t.category and j != i]
        out[i] = related[int(rng.integers(len(related)))]
    return out


def structured_embeddings(catalogue: Catalogue, dim: int, seed: int) -> np.ndarray:
    """``(N, dim)`` float32 L2-normalised pin vectors from category, type, attribute and brand (seeded)."""
    rng = np.random.default_rng([seed, 7919])
    types = catalogue.types
    cats = sorted({t.category for t in types})
    attrs = sorted(set(catalogue.attr.tolist()))
    brands = sorted(set(catalogue.brand.tolist()))

    def table(n: int) -> np.ndarray:
        return rng.standard_normal((n, dim)) / np.sqrt(dim)

    g_cat, g_type, g_attr, g_brand = table(len(cats)), table(len(types)), table(len(attrs)), table(len(brands))
    cat_of_type = np.array([cats.index(t.category) for t in types])
    a = np.searchsorted(np.array(attrs, dtype=object), catalogue.attr)
    b = np.searchsorted(np.array(brands, dtype=object), catalogue.brand)
    t = catalogue.type_idx
    v = (1.0 * g_cat[cat_of_type[t]] + 1.2 * g_type[t] + 0.8 * g_attr[a] + 0.4 * g_brand[b]
         + 0.5 * table(len(t)))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype(np.float32)


def copy_catalogue_pins(paths: HomefeedPaths, catalogue: Catalogue, source_dir: Path) -> None:
    """Copy ``source_dir/pins.parquet`` (and ``pin_tower.json``) when it is this catalogue with a frozen embedding."""
    from encoders.data.schema import read_table

    src = Path(source_dir) / "pins.parquet"
    pins = read_table(src, PINS)
    if "embedding" not in pins.column_names:
        raise ValueError(f"--pins-from {source_dir}: {src} has no embedding column (run `searchsage pins embed` first)")
    if (pins.column("pin_id").to_pylist() != catalogue.pin_ids or pins.column("text").to_pylist() != catalogue.titles):
        raise ValueError(f"--pins-from {source_dir}: its {pins.num_rows} pins are not the synthetic catalogue of "
                         f"--n-pins {len(catalogue.pin_ids)} and this --seed; generate with the --n-pins and --seed "
                         "of the `searchsage data synth` that wrote them")
    write_table(pins.select(["pin_id", "text", "embedding"]), paths.pins, PINS)
    tower = Path(source_dir) / PIN_TOWER_FILE
    if tower.is_file():
        shutil.copyfile(tower, paths.root / PIN_TOWER_FILE)


def write_homefeed_pins(paths: HomefeedPaths, catalogue: Catalogue, config: HomefeedSynthConfig) -> None:
    """Write ``pins.parquet`` with the ``embedding`` column of ``config.pin_embeddings`` (+ ``pin_tower.json``),
    or the one of ``config.pins_from``."""
    if config.pins_from is not None:
        copy_catalogue_pins(paths, catalogue, Path(config.pins_from))
        return
    pins = pa.table({"pin_id": pa.array(catalogue.pin_ids, pa.string()),
                     "text": pa.array(catalogue.titles, pa.string())})
    if config.pin_embeddings == "minilm":
        write_pins(paths, pins)  # keeps cached embeddings of the same catalogue
        embed_pins(paths.root, threads=config.threads, progress=config.progress)
        return
    emb = structured_embeddings(catalogue, config.structured_dim, config.seed)
    col = pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1), pa.float32()), emb.shape[1])
    write_table(pins.append_column("embedding", col.cast(pa.list_(pa.float32()))), paths.pins, PINS)
    info = PinTowerInfo("structured", None, None, None, True, None, int(emb.shape[1]), len(catalogue.pin_ids),
                        text_hash(catalogue.pin_ids, catalogue.titles))
    (paths.root / PIN_TOWER_FILE).write_text(info.to_json())
