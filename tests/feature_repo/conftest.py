"""Fixtures for the Feast repository tests."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture()
def feast_objects() -> Callable[[Path, str], list]:
    """Import ``REPO/definitions.py`` under a unique module name and return its Feast objects
    (what ``feast apply`` would register), for tests that apply through the Python API."""

    def load(repo: Path, module_name: str) -> list:
        from feast import (
            BatchFeatureView,
            Entity,
            FeatureService,
            FileSource,
            OnDemandFeatureView,
            RequestSource,
        )

        spec = importlib.util.spec_from_file_location(module_name, repo / "definitions.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        kinds = (BatchFeatureView, Entity, FeatureService, FileSource, OnDemandFeatureView, RequestSource)
        return [v for v in vars(mod).values() if isinstance(v, kinds)]

    return load
