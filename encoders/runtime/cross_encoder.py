"""Torch-free scoring of (query, text) pairs with an exported cross-encoder (the relevance teacher).

A cross-encoder directory holds ``cross_encoder.json`` (:class:`CrossEncoderManifest`),
``tokenizer.json``, ``model.onnx`` (fp32) and, when it passed the parity gate, ``model.int8.onnx``.
The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` (``(N, L)`` int64) and
returns ``relevance_logit`` ``(N,)`` float32. Calibration to the grade scale is a monotone
piecewise-linear map (``np.interp`` over the manifest's knots), fitted at training time.

Usage::

    teacher = CrossEncoderScorer("runs/teacher")            # the directory written by train-teacher
    grades = teacher.score(["angle bracket"], ["Simpson Strong-Tie 12-Gauge Angle"])   # (1,) float32

:class:`PairTokenizer` is also what training uses, so training and serving cannot tokenise pairs
differently: ``[CLS] query [SEP] text [SEP]``, truncated longest-first to ``max_length`` tokens.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from encoders.normalize import normalize_query
from encoders.runtime.bundle import check_texts, make_session, plan_calls
from encoders.runtime.manifest import BundleError

CROSS_ENCODER_MANIFEST = "cross_encoder.json"
ONNX_DIR = "onnx"
PAIR_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
LOGIT_NAME = "relevance_logit"
VARIANTS = ("fp32", "int8")


@dataclass
class PairBatch:
    """``input_ids``, ``attention_mask``, ``token_type_ids``: ``(N, L)`` int64, ``L`` = longest row."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    token_type_ids: np.ndarray

    def feeds(self) -> dict[str, np.ndarray]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask,
                "token_type_ids": self.token_type_ids}


class PairTokenizer:
    """Encode (query, text) pairs with a ``tokenizer.json`` (the base model's), unpadded or padded."""

    def __init__(self, path: str | Path, max_length: int):
        self.path = Path(path)
        if not self.path.is_file():
            raise BundleError(f"{self.path} not found: a cross-encoder must carry tokenizer.json")
        self.max_length = int(max_length)
        tok = Tokenizer.from_file(str(self.path))
        tok.no_padding()
        tok.enable_truncation(max_length=self.max_length, strategy="longest_first")
        self._tok = tok
        pad = next((tok.token_to_id(t) for t in ("[PAD]", "<pad>") if tok.token_to_id(t) is not None), 0)
        self.pad_id = int(pad)

    def encode(self, queries: Sequence[str], texts: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """``(ids, type_ids)`` per pair, unpadded."""
        enc = self._tok.encode_batch(list(zip(queries, texts, strict=True)))
        return [(e.ids, e.type_ids) for e in enc]

    def pad(self, rows: Sequence[tuple[list[int], list[int]]]) -> PairBatch:
        """Right-pad encoded pairs to the longest one → :class:`PairBatch`."""
        width = max((len(r[0]) for r in rows), default=0)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        types = np.zeros((len(rows), width), dtype=np.int64)
        for i, (r, t) in enumerate(rows):
            ids[i, : len(r)], mask[i, : len(r)], types[i, : len(r)] = r, 1, t
        return PairBatch(ids, mask, types)

    def __call__(self, queries: Sequence[str], texts: Sequence[str]) -> PairBatch:
        return self.pad(self.encode(queries, texts))


@dataclass
class CrossEncoderManifest:
    """What a cross-encoder directory holds.

    ``grade_scale``: ``{"lowest", "highest", "levels"}`` of the judgments it was trained on;
    ``calibration``: ``{"x": [...], "y": [...]}`` knots mapping ``sigmoid(logit)`` to a grade
    (monotone, ``np.interp``; empty = linear map of the sigmoid onto the scale);
    ``files``: variant → ONNX file; ``recommended_variant``: what :class:`CrossEncoderScorer` uses by
    default (int8 only when it passed the parity gate); ``parity``: the gate's figures;
    ``model_version``: content hash of the fp32 graph, tokenizer and calibration.
    """

    base_model: str
    max_length: int
    grade_scale: dict[str, Any]
    calibration: dict[str, list[float]]
    model_version: str
    files: dict[str, str] = field(default_factory=lambda: {"fp32": "model.onnx"})
    tokenizer: str = "tokenizer.json"
    recommended_variant: str = "fp32"
    parity: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    kind: str = "cross_encoder"
    format: int = 1

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / CROSS_ENCODER_MANIFEST
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def read(cls, directory: str | Path) -> CrossEncoderManifest:
        path = Path(directory) / CROSS_ENCODER_MANIFEST
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BundleError(f"{path}: not a readable cross-encoder manifest ({exc})") from None
        if data.get("kind") != "cross_encoder":
            raise BundleError(f"{path}: kind is {data.get('kind')!r}, expected 'cross_encoder'")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in known})


def resolve_cross_encoder_dir(path: str | Path) -> Path:
    """``path`` itself when it holds the manifest, else ``path/onnx`` (a teacher run directory)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise BundleError(f"cross-encoder path {p} does not exist")
    for cand in (p, p / ONNX_DIR):
        if (cand / CROSS_ENCODER_MANIFEST).is_file():
            return cand
    raise BundleError(f"{p} is not a cross-encoder: expected {p / CROSS_ENCODER_MANIFEST} or "
                      f"{p / ONNX_DIR / CROSS_ENCODER_MANIFEST} (written by `searchsage relevance train-teacher`)")


def calibrate(probabilities: np.ndarray, calibration: dict[str, list[float]], lowest: float, highest: float
              ) -> np.ndarray:
    """Map ``sigmoid(logit)`` values ``(N,)`` to grades ``(N,)`` with the manifest's knots."""
    p = np.asarray(probabilities, dtype=np.float64)
    xs, ys = calibration.get("x") or [], calibration.get("y") or []
    if len(xs) >= 2:
        return np.interp(p, xs, ys)
    return lowest + p * (highest - lowest)


class CrossEncoderScorer:
    """Score (query, text) pairs with onnxruntime: batched, length-sorted, no torch.

    ``variant``: ``"fp32"``, ``"int8"`` or ``None`` (the manifest's recommended variant).
    Queries are normalised (:func:`encoders.normalize.normalize_query`) as in training.
    """

    def __init__(self, path: str | Path, variant: str | None = None, threads: int = 2, batch_size: int = 128,
                 max_tokens: int | None = 4096, spin: bool = False):
        self.directory = resolve_cross_encoder_dir(path)
        self.manifest = CrossEncoderManifest.read(self.directory)
        self.variant = variant or self.manifest.recommended_variant
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        fname = self.manifest.files.get(self.variant)
        if fname is None or not (self.directory / fname).is_file():
            raise BundleError(f"{self.directory} has no {self.variant} model (files: {self.manifest.files})")
        if batch_size < 1 or threads < 1:
            raise ValueError(f"batch_size and threads must be >= 1, got {batch_size}, {threads}")
        self.batch_size, self.max_tokens = int(batch_size), max_tokens
        self.tokenizer = PairTokenizer(self.directory / self.manifest.tokenizer, self.manifest.max_length)
        self.session = make_session(self.directory / fname, int(threads), spin)
        self._inputs = {i.name for i in self.session.get_inputs()}
        scale = self.manifest.grade_scale
        self.lowest, self.highest = float(scale["lowest"]), float(scale["highest"])

    @property
    def model_version(self) -> str:
        v = self.manifest.model_version
        return v if self.variant == "fp32" else f"{v}+{self.variant}"

    def logits(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Raw relevance logits ``(N,)`` float32, in input order."""
        qs = [normalize_query(q) for q in check_texts(queries)]
        ts = check_texts(texts)
        if len(qs) != len(ts):
            raise ValueError(f"queries and texts differ in length: {len(qs)} vs {len(ts)}")
        out = np.zeros(len(qs), dtype=np.float32)
        if not qs:
            return out
        rows = self.tokenizer.encode(qs, ts)
        order = np.argsort([len(r[0]) for r in rows], kind="stable")
        for idx in plan_calls(order, [len(r[0]) for r in rows], self.batch_size, self.max_tokens):
            feeds = {k: v for k, v in self.tokenizer.pad([rows[i] for i in idx]).feeds().items() if k in self._inputs}
            out[idx] = np.asarray(self.session.run([LOGIT_NAME], feeds)[0], dtype=np.float32).reshape(-1)
        return out

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> np.ndarray:
        """Calibrated grades ``(N,)`` float32 on the training judgments' scale."""
        p = 1.0 / (1.0 + np.exp(-self.logits(queries, texts).astype(np.float64)))
        return calibrate(p, self.manifest.calibration, self.lowest, self.highest).astype(np.float32)
