"""Train the full user tower and its ablation variants on one loaded dataset.

The variants (:data:`encoders.homefeed.config.ABLATIONS`: without ID embeddings, without feature
crossing) get the same data, split, seed and budget as the full tower and land in
``RUN/ablations/<name>/``, where :func:`encoders.homefeed.evaluate.evaluate_homefeed` finds them.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from encoders.homefeed.config import ABLATIONS, ABLATIONS_DIR, HomefeedTrainConfig
from encoders.homefeed.dataset import load_homefeed
from encoders.homefeed.train import HomefeedTrainResult, train_homefeed


def train_with_ablations(config: HomefeedTrainConfig) -> dict[str, HomefeedTrainResult]:
    """``{"tower": full run, "<variant>": …}``: the full tower in ``config.out`` and each variant of
    :data:`ABLATIONS` in ``config.out/ablations/<variant>``."""
    data = load_homefeed(config.data)
    results = {"tower": train_homefeed(config, data)}
    for name, changes in ABLATIONS.items():
        variant = replace(config, out=str(Path(config.out) / ABLATIONS_DIR / name), **changes)
        results[name] = train_homefeed(variant, data)
    return results
