"""The homefeed run directory: what ``searchsage homefeed train`` writes and every later step reads.

::

    RUN/tower_config.json   UserTowerConfig (architecture, table sizes)
    RUN/tower.pt            the trained UserTower state_dict
    RUN/vocab.json          {"users": IdVocab, "interests": IdVocab, "split": days, "split_iso": "…"}
    RUN/checkpoint.pt       resumable state (tower, temperature, optimizers, sampler, RNG, step)
    RUN/train_log.jsonl     one record per logging step (step, loss, accuracy, lr, temperature, seconds)
    RUN/train_summary.json  config, split, steps, epochs, wall time, final loss, why it stopped
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from encoders.homefeed.events import IdVocab, format_time
from encoders.homefeed.tower import UserTower, UserTowerConfig

TOWER_CONFIG = "tower_config.json"
TOWER_WEIGHTS = "tower.pt"
VOCAB = "vocab.json"
CHECKPOINT = "checkpoint.pt"
TRAIN_LOG = "train_log.jsonl"
TRAIN_SUMMARY = "train_summary.json"


class RunNotFound(FileNotFoundError):
    """``run_dir`` is not a trained homefeed run."""


@dataclass
class HomefeedRun:
    """A trained run loaded for inference: the tower (eval mode), its vocabularies and the split time."""

    root: Path
    tower: UserTower
    user_vocab: IdVocab
    interest_vocab: IdVocab
    split: float
    summary: dict[str, Any]

    @property
    def config(self) -> UserTowerConfig:
        return self.tower.config

    @property
    def model_version(self) -> str:
        """``homefeed-<run dir name>-<split date>``: what a feature store records next to the vectors."""
        return f"homefeed-{self.root.name}-{format_time(self.split)[:10]}"


def write_run_meta(root: Path, config: UserTowerConfig, users: IdVocab, interests: IdVocab, split: float) -> None:
    """Write ``tower_config.json`` and ``vocab.json`` of a run."""
    root.mkdir(parents=True, exist_ok=True)
    config.save(root / TOWER_CONFIG)
    (root / VOCAB).write_text(json.dumps({"users": users.to_dict(), "interests": interests.to_dict(),
                                          "split": split, "split_iso": format_time(split)}))


def load_run(run_dir: str | Path) -> HomefeedRun:
    """Load a trained run (tower in eval mode); :class:`RunNotFound` names what is missing."""
    root = Path(run_dir)
    for name in (TOWER_CONFIG, TOWER_WEIGHTS, VOCAB):
        if not (root / name).exists():
            raise RunNotFound(f"{root}: no {name} (expected a run directory of `searchsage homefeed train`)")
    config = UserTowerConfig.load(root / TOWER_CONFIG)
    tower = UserTower(config)
    tower.load_state_dict(torch.load(root / TOWER_WEIGHTS, map_location="cpu", weights_only=True))
    tower.eval()
    vocab = json.loads((root / VOCAB).read_text())
    summary = json.loads((root / TRAIN_SUMMARY).read_text()) if (root / TRAIN_SUMMARY).exists() else {}
    return HomefeedRun(root, tower, IdVocab.from_dict(vocab["users"]), IdVocab.from_dict(vocab["interests"]),
                       float(vocab["split"]), summary)
