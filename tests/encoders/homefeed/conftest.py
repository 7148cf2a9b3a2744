"""Shared tiny homefeed fixtures: a structured-embedding synthetic dataset and a trained run (seconds on 1 thread)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from encoders.homefeed.config import HomefeedTrainConfig
from encoders.homefeed.synthetic import HomefeedSynthConfig, write_synthetic_homefeed

TINY_DATA = HomefeedSynthConfig(n_users=160, n_pins=480, events_per_user=30.0, days=60, pin_embeddings="structured",
                                structured_dim=16, threads=1, progress=False)


def tiny_train_config(data: Path, out: Path, **changes: object) -> HomefeedTrainConfig:
    """A training config that runs in a few seconds on one thread."""
    base: dict[str, object] = dict(data=str(data), out=str(out), eval_days=10.0, history=8, hidden=32, id_dim=16,
                                   heads=2, mask_blocks=2, batch_size=64, random_negatives=64, epochs=1.0,
                                   max_steps=40, lr=5e-3, threads=1, log_every=5, progress=False)
    base.update(changes)
    return HomefeedTrainConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def train_config() -> Callable[..., HomefeedTrainConfig]:
    """:func:`tiny_train_config`, for tests (conftest modules are not importable by name)."""
    return tiny_train_config


@pytest.fixture(scope="session")
def tiny_homefeed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("homefeed") / "data"
    write_synthetic_homefeed(root, TINY_DATA)
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_homefeed: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full tower plus both ablation variants in ``RUN/ablations/``."""
    from encoders.homefeed.ablations import train_with_ablations

    out = tmp_path_factory.mktemp("homefeed_run") / "run"
    train_with_ablations(tiny_train_config(tiny_homefeed, out, max_steps=15))
    return out
