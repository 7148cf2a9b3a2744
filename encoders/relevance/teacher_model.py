"""The relevance teacher as a torch module: any local transformers directory with a sequence-
classification head of one output (``AutoModelForSequenceClassification``, ``num_labels=1``).

A bi-encoder checkpoint such as the packaged all-MiniLM-L6-v2 gets a freshly initialised head; a
directory that transformers cannot load as a sequence classifier raises :class:`TeacherModelError`
naming the directory and its model type. The pair tokenizer is the runtime's
(:class:`encoders.runtime.cross_encoder.PairTokenizer` over the model's ``tokenizer.json``), so
training, export and serving tokenise identically.
"""

from __future__ import annotations

import inspect
import json
import tempfile
from pathlib import Path

import torch
from torch import nn

from encoders.model.base_model import resolve_base_model
from encoders.runtime.cross_encoder import PairTokenizer


class TeacherModelError(ValueError):
    """A model directory cannot serve as a cross-encoder (names the directory and why)."""


def load_classifier(model_dir: str | Path | None) -> nn.Module:
    """Load ``model_dir`` (default: the packaged MiniLM) as a one-output sequence classifier."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    path = resolve_base_model(model_dir)
    model_type = json.loads((path / "config.json").read_text()).get("model_type", "?")
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "some weights are newly initialised" is expected for a bi-encoder
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
    except (ValueError, KeyError, OSError) as exc:
        raise TeacherModelError(
            f"model directory {path} (model_type {model_type!r}) cannot be loaded as a sequence classifier "
            f"(AutoModelForSequenceClassification): {str(exc).splitlines()[0]}"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
    if getattr(model.config, "num_labels", 1) != 1:
        raise TeacherModelError(f"model directory {path} has {model.config.num_labels} labels; the teacher needs one")
    return model


def tokenizer_json(model_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """The model's ``tokenizer.json``; converted from the slow files (vocab.txt...) into ``out_dir``
    (or a temporary directory) when the directory has none."""
    path = resolve_base_model(model_dir)
    if (path / "tokenizer.json").is_file():
        return path / "tokenizer.json"
    from transformers import AutoTokenizer

    target = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="searchsage-tok-"))
    target.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(str(path), use_fast=True)
    tok.backend_tokenizer.save(str(target / "tokenizer.json"))
    return target / "tokenizer.json"


def pair_tokenizer(model_dir: str | Path | None, max_length: int) -> PairTokenizer:
    return PairTokenizer(tokenizer_json(resolve_base_model(model_dir)), max_length)


class LogitModel(nn.Module):
    """``(input_ids, attention_mask, token_type_ids) (N, L) → relevance logit (N,)`` (what ONNX exports)."""

    def __init__(self, classifier: nn.Module):
        super().__init__()
        self.classifier = classifier
        self.uses_token_types = "token_type_ids" in inspect.signature(classifier.forward).parameters

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor) -> torch.Tensor:
        kwargs = {"token_type_ids": token_type_ids} if self.uses_token_types else {}
        return self.classifier(input_ids=input_ids, attention_mask=attention_mask, **kwargs).logits.squeeze(-1)
