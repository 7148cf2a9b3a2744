"""The dotted paths that users' Feast repositories hold are a public contract: ``feature_store.yaml``
names the online store plugin and the compute engine by dotted path, and Feast's registry keeps the
UDFs' source (and pickles) that import :mod:`encoders.featurestore.udfs`. Moving one of these modules
breaks every applied repository, so they stay put (the rest of the Redis stack moved freely)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
PUBLIC = {
    "online_store": "encoders.featurestore.online_store.SearchSageRedisOnlineStore",
    "batch_engine": "encoders.featurestore.engine.EmbeddingComputeEngine",
}


def _resolve(dotted: str) -> object:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_the_repository_names_the_plugin_by_its_public_dotted_paths() -> None:
    config = yaml.safe_load((ROOT / "feature_repo" / "feature_store.yaml").read_text())
    for section, dotted in PUBLIC.items():
        assert config[section]["type"] == dotted
        assert isinstance(_resolve(dotted), type)
    from encoders.featurestore.online_store import PLUGIN_TYPE

    assert PUBLIC["online_store"] == PLUGIN_TYPE


def test_the_udf_source_kept_in_the_registry_imports_the_udfs_module() -> None:
    text = (ROOT / "feature_repo" / "definitions.py").read_text()
    assert "from encoders.featurestore.udfs import {name} as f" in text
    for name in set(re.findall(r'_udf_source\("(\w+)"\)', text)):
        assert callable(_resolve(f"encoders.featurestore.udfs.{name}"))
