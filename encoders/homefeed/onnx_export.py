"""Export the user tower to ONNX and check it against torch.

``export_user_tower(run_dir, out_dir)`` writes a *user bundle*::

    OUT/model.onnx        inputs INPUT_NAMES (batch, history and interest axes dynamic) → user_vector (B, D)
    OUT/vocab.json        the run's user and interest vocabularies (copied)
    OUT/tower_config.json
    OUT/manifest.json     {"kind": "homefeed_user", "dim", "history", "max_interests", "inputs", "output",
                           "model_version", "split_iso", "parity": {"max_abs_diff", "batch"}}

The legacy exporter is used (``dynamo=False``), as for the query tower. The pin vectors are inputs,
not weights: the frozen pin matrix stays with the dataset / feature store, and the scorer gathers
the user's recent pins from it (:mod:`encoders.homefeed.onnx_scorer`).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from encoders.homefeed.dataset import MAX_INTERESTS
from encoders.homefeed.events import format_time
from encoders.homefeed.features import INPUT_NAMES, OUTPUT_NAME
from encoders.homefeed.run import TOWER_CONFIG, VOCAB, load_run

MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
PARITY_TOLERANCE = 1e-4


def example_inputs(dim: int, history: int, user_rows: int, interest_rows: int, batch: int = 8, seed: int = 0
                   ) -> dict[str, np.ndarray]:
    """Random but valid tower inputs (some padding, some unknown users, some conditions) for export and parity."""
    rng = np.random.default_rng(seed)
    mask = (np.arange(history)[None, :] >= rng.integers(0, history, size=batch)[:, None]).astype(np.float32)
    vectors = rng.standard_normal((batch, history, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=-1, keepdims=True)
    interest = rng.integers(0, interest_rows, size=(batch, MAX_INTERESTS))
    counts = np.maximum((interest > 0).sum(axis=1, keepdims=True), 1)
    return {
        "hist_vectors": vectors * mask[..., None],
        "hist_mask": mask,
        "hist_age": (rng.exponential(10.0, size=(batch, history)) * mask).astype(np.float32),
        "hist_action": rng.integers(0, 3, size=(batch, history)).astype(np.int64),
        "user_row": rng.integers(0, user_rows, size=batch).astype(np.int64),
        "interest_rows": interest.astype(np.int64),
        "interest_weights": ((interest > 0) / counts).astype(np.float32),
        "condition_row": np.where(rng.random(batch) < 0.5, rng.integers(0, interest_rows, size=batch), 0)
        .astype(np.int64),
    }


def export_user_tower(run_dir: str | Path, out_dir: str | Path, opset: int = 17) -> dict[str, Any]:
    """Export the run's tower to ``out_dir`` (the user bundle above); returns the manifest.

    Raises ValueError when onnxruntime's output differs from torch's by more than 1e-4 on the parity batch.
    """
    import onnxruntime as ort

    run = load_run(run_dir)
    c = run.config
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    inputs = example_inputs(c.pin_dim, c.history, c.user_rows, c.interest_rows)
    args = tuple(torch.from_numpy(inputs[n]) for n in INPUT_NAMES)
    axes: dict[str, dict[int, str]] = {n: {0: "batch"} for n in INPUT_NAMES}
    for n in ("hist_vectors", "hist_mask", "hist_age", "hist_action"):
        axes[n][1] = "history"
    for n in ("interest_rows", "interest_weights"):
        axes[n][1] = "interests"
    axes[OUTPUT_NAME] = {0: "batch"}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation notices
        torch.onnx.export(run.tower, args, str(out / MODEL_FILE), input_names=list(INPUT_NAMES),
                          output_names=[OUTPUT_NAME], dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
        expected = run.tower(*args).numpy()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(out / MODEL_FILE), options, providers=["CPUExecutionProvider"])
    got = session.run([OUTPUT_NAME], inputs)[0]
    diff = float(np.abs(got - expected).max())
    if diff > PARITY_TOLERANCE:
        raise ValueError(f"ONNX parity failed: max |onnxruntime − torch| = {diff:.2e} > {PARITY_TOLERANCE:g}")
    for name in (VOCAB, TOWER_CONFIG):
        shutil.copyfile(run.root / name, out / name)
    manifest = {"kind": "homefeed_user", "dim": c.pin_dim, "history": c.history, "max_interests": MAX_INTERESTS,
                "inputs": list(INPUT_NAMES), "output": OUTPUT_NAME, "model_version": run.model_version,
                "split_iso": format_time(run.split), "opset": opset,
                "parity": {"max_abs_diff": diff, "batch": len(expected), "tolerance": PARITY_TOLERANCE}}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest
