"""The SearchSage query tower: a pretrained Transformer, a pooling step and one linear readout.

``QueryTower`` maps token ids ``(N, L)`` to embeddings ``(N, D)`` in the frozen pin space.
It is a plain ``torch.nn.Module`` so it trains, checkpoints and exports to ONNX as one unit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from encoders.normalize import normalize_queries

Pooling = Literal["cls", "mean"]


@dataclass
class TowerConfig:
    """How a query tower is built.

    ``out_dim`` is D, the dimension of the frozen pin space; ``None`` means the encoder's hidden size.
    ``readout_init="identity"`` starts the readout as the identity (only when D equals the hidden
    size), so the untrained tower equals the zero-shot base model.
    """

    base_model: str
    out_dim: int | None = None
    pooling: Pooling = "mean"
    normalize: bool = True
    max_length: int = 32
    readout_init: Literal["identity", "random"] = "identity"

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TowerConfig:
        return cls(**json.loads(text))


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: Pooling) -> torch.Tensor:
    """Pool token states ``(N, L, H)`` to ``(N, H)``: the first ([CLS]) token or the masked mean."""
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    raise ValueError(f"unknown pooling {pooling!r}; expected 'cls' or 'mean'")


class QueryTower(nn.Module):
    """Transformer encoder → pooling → ``Linear(hidden, D)`` → optional L2 norm.

    ``forward(input_ids (N, L) int64, attention_mask (N, L) int64) -> (N, D) float32``.
    """

    def __init__(self, config: TowerConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        if encoder is None:
            encoder = AutoModel.from_pretrained(config.base_model)
        self.encoder = encoder
        hidden = int(self.encoder.config.hidden_size)
        out_dim = config.out_dim or hidden
        config.out_dim = out_dim
        self.readout = nn.Linear(hidden, out_dim)
        if config.readout_init == "identity":
            if out_dim != hidden:
                raise ValueError(
                    f"readout_init='identity' needs D == hidden size, got D={out_dim}, hidden={hidden}; "
                    "use readout_init='random'"
                )
            with torch.no_grad():
                self.readout.weight.copy_(torch.eye(hidden))
                self.readout.bias.zero_()

    @property
    def out_dim(self) -> int:
        return int(self.readout.out_features)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        z = self.readout(pool(hidden, attention_mask, self.config.pooling))
        if self.config.normalize:
            z = nn.functional.normalize(z, dim=-1)
        return z

    # --- persistence -------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write ``tower_config.json``, ``tower.pt`` (state dict) and the encoder config."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        (d / "tower_config.json").write_text(self.config.to_json())
        torch.save(self.state_dict(), d / "tower.pt")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> QueryTower:
        """Rebuild a tower saved by :meth:`save` (the base model's architecture comes from its config)."""
        d = Path(directory)
        config = TowerConfig.from_json((d / "tower_config.json").read_text())
        encoder = AutoModel.from_config(AutoConfig.from_pretrained(config.base_model))
        tower = cls(config, encoder=encoder)
        tower.load_state_dict(torch.load(d / "tower.pt", map_location="cpu", weights_only=True))
        return tower.eval()


def load_tokenizer(base_model: str | Path) -> PreTrainedTokenizerBase:
    """The base model's tokenizer (fast tokenizer, from the local directory only)."""
    return AutoTokenizer.from_pretrained(str(base_model))


@torch.inference_mode()
def encode_texts(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int,
    batch_size: int = 256,
    normalize_as_query: bool = True,
    progress: bool = False,
) -> torch.Tensor:
    """Encode ``texts`` with ``model(input_ids, attention_mask)`` in batches → ``(N, D)`` float32 (CPU).

    Queries are normalised with :func:`encoders.normalize.normalize_query` first (pins are not).
    """
    from tqdm.auto import tqdm

    texts = normalize_queries(texts) if normalize_as_query else list(texts)
    model.eval()
    out = []
    for i in tqdm(range(0, len(texts), batch_size), disable=not progress, desc="encode", unit="batch"):
        batch = tokenizer(
            texts[i : i + batch_size], padding=True, truncation=True, max_length=max_length, return_tensors="pt"
        )
        out.append(model(batch["input_ids"], batch["attention_mask"]).float())
    if not out:
        return torch.zeros((0, getattr(model, "out_dim", 0)), dtype=torch.float32)
    return torch.cat(out)


def embed_in_length_buckets(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    texts: list[str],
    max_length: int,
    buckets: int = 8,
) -> torch.Tensor:
    """``model`` over ``texts`` (already normalised) → ``(N, D)``, keeping the autograd graph.

    The texts are sorted by token count and cut into ``buckets`` chunks, each padded only to its own
    longest text, so a few long queries do not pad the whole batch (padding is wasted compute: the
    result equals one padded forward pass up to float rounding). Rows come back in input order.
    """
    ids = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    order = sorted(range(len(texts)), key=lambda i: len(ids[i]))
    size = max(1, -(-len(texts) // max(1, buckets)))
    parts, where = [], []
    for s in range(0, len(order), size):
        chunk = order[s : s + size]
        enc = tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt")
        parts.append(model(enc["input_ids"], enc["attention_mask"]))
        where.extend(chunk)
    out = torch.cat(parts)
    inverse = torch.empty(len(where), dtype=torch.long)
    inverse[torch.tensor(where)] = torch.arange(len(where))
    return out[inverse]
