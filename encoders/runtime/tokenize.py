"""Tokenisation for bundles with the ``tokenizers`` Rust library (torch-free, no transformers).

The bundle carries the base model's ``tokenizer.json``; :class:`BundleTokenizer` reproduces
``AutoTokenizer(texts, padding=True, truncation=True, max_length=L)`` exactly: special tokens
added, truncation to ``max_length`` tokens, right padding to the longest row of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer


@dataclass
class TokenBatch:
    """``input_ids`` and ``attention_mask``, both ``(N, L)`` int64, ``L`` = longest row (<= max_length)."""

    input_ids: np.ndarray
    attention_mask: np.ndarray


class BundleTokenizer:
    """Load ``tokenizer.json`` and turn lists of strings into padded int64 arrays."""

    def __init__(self, path: str | Path, max_length: int):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} not found: a bundle must carry tokenizer.json")
        self.max_length = int(max_length)
        tok = Tokenizer.from_file(str(self.path))
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_length)
        self._tok = tok
        self.pad_id = self._find_pad_id(tok)

    @staticmethod
    def _find_pad_id(tok: Tokenizer) -> int:
        for name in ("[PAD]", "<pad>", "<PAD>"):
            i = tok.token_to_id(name)
            if i is not None:
                return int(i)
        return 0

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Token ids per text (special tokens added, truncated to ``max_length``), unpadded."""
        return [e.ids for e in self._tok.encode_batch(texts)]

    def pad(self, rows: list[list[int]]) -> TokenBatch:
        """Right-pad ``rows`` to the longest one → :class:`TokenBatch` of ``(N, L)`` int64 arrays."""
        n = len(rows)
        width = max((len(r) for r in rows), default=0)
        ids = np.full((n, width), self.pad_id, dtype=np.int64)
        mask = np.zeros((n, width), dtype=np.int64)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = r
            mask[i, : len(r)] = 1
        return TokenBatch(ids, mask)

    def __call__(self, texts: list[str]) -> TokenBatch:
        """Tokenise and pad in one step (what ``AutoTokenizer(..., padding=True, truncation=True)`` does)."""
        return self.pad(self.encode(texts))
