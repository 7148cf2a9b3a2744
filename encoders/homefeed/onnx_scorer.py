"""User embeddings with onnxruntime and numpy only — no torch (the serving / feature-store path).

:class:`OnnxUserScorer` loads a user bundle of :func:`encoders.homefeed.onnx_export.export_user_tower`
and embeds users from the same features the torch tower trains on
(:func:`encoders.homefeed.features.build_batch`), so both paths agree (max |Δ| ≤ 1e-4, checked at
export and by the tests).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from encoders.homefeed.dataset import HomefeedData
from encoders.homefeed.events import IdVocab
from encoders.homefeed.features import OUTPUT_NAME, FeatureBatch, build_batch


class OnnxUserScorer:
    """``OnnxUserScorer(bundle_dir, threads=1)``: ``.embed_batch(batch, pin_matrix)`` and
    ``.embed_users(data, users, at)`` → ``(B, D)`` float32; ``.dim``, ``.history``, ``.model_version``."""

    def __init__(self, bundle_dir: str | Path, threads: int = 1):
        import onnxruntime as ort

        root = Path(bundle_dir)
        self.manifest = json.loads((root / "manifest.json").read_text())
        if self.manifest.get("kind") != "homefeed_user":
            raise ValueError(f"{root}: not a homefeed user bundle (manifest kind {self.manifest.get('kind')!r})")
        vocab = json.loads((root / "vocab.json").read_text())
        self.user_vocab = IdVocab.from_dict(vocab["users"])
        self.interest_vocab = IdVocab.from_dict(vocab["interests"])
        self.split = float(vocab["split"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(root / "model.onnx"), options, providers=["CPUExecutionProvider"])

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def history(self) -> int:
        return int(self.manifest["history"])

    @property
    def model_version(self) -> str:
        return str(self.manifest["model_version"])

    def embed_batch(self, batch: FeatureBatch, pin_matrix: np.ndarray) -> np.ndarray:
        """``(B, D)`` float32 L2-normalised user vectors of one feature batch."""
        return self.session.run([OUTPUT_NAME], batch.inputs(pin_matrix))[0]

    def embed_users(self, data: HomefeedData, users: np.ndarray, at: float | np.ndarray,
                    condition_rows: np.ndarray | None = None, batch_size: int = 2048) -> np.ndarray:
        """``(B, D)`` vectors of ``users (B,)`` (indices into ``data.log``) as of ``at`` (days since epoch):
        one time for every user, or ``(B,)`` a time per request; each sees its events strictly before it."""
        log = data.log
        users = np.asarray(users, dtype=np.int64)
        if np.ndim(at) == 0:
            n_before = log.count_before(float(at))[users]
            ref = np.full(len(users), float(at))
        else:
            ref = np.asarray(at, dtype=np.float64)
            if ref.shape != users.shape:
                raise ValueError(f"at: expected one time or {users.shape[0]} times, got shape {ref.shape}")
            n_before = np.fromiter((np.searchsorted(log.times[log.offsets[u]:log.offsets[u + 1]], t)
                                    for u, t in zip(users.tolist(), ref.tolist(), strict=True)),
                                   dtype=np.int64, count=len(users))
        user_rows = self.user_vocab.rows(log.user_ids)
        bags = data.bags(self.interest_vocab)
        out = np.empty((len(users), self.dim), dtype=np.float32)
        for s in range(0, len(users), batch_size):
            sl = slice(s, s + batch_size)
            cond = None if condition_rows is None else condition_rows[sl]
            batch = build_batch(log, users[sl], n_before[sl], ref[sl], self.history, user_rows, bags, cond)
            out[sl] = self.embed_batch(batch, data.pin_matrix)
        return out
