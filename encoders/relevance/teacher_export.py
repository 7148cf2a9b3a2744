"""Export the teacher to ONNX (fp32 + int8 when the parity gate allows) with its manifest.

Checks, on a fixed sample of the validation pairs (or any pairs given):

* fp32 graph vs torch: max |logit difference| must be <= ``fp32_max_abs`` (an error otherwise);
* int8 (per-channel weights, per-token activations, as the towers) vs fp32: Pearson correlation of
  the logits, mean and max |calibrated grade difference|, and mean per-query Kendall tau between
  the two score lists. int8 becomes the recommended variant only when correlation >=
  ``int8_min_corr`` and the mean grade difference <= ``int8_max_mean_grade_diff`` × scale span.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from encoders.export.quantize import QuantizeConfig, quantize_int8
from encoders.relevance.pairs import JudgedPairs
from encoders.relevance.teacher_model import LogitModel
from encoders.relevance.teacher_train import predict_logits, validation_figures
from encoders.runtime.cross_encoder import (
    LOGIT_NAME,
    PAIR_INPUT_NAMES,
    CrossEncoderManifest,
    CrossEncoderScorer,
    PairTokenizer,
    calibrate,
)
from encoders.runtime.manifest import BundleError


@dataclass(frozen=True)
class TeacherParity:
    """Limits of the export checks."""

    fp32_max_abs: float = 1e-3
    int8_min_corr: float = 0.99
    int8_max_mean_grade_diff: float = 0.05


def _file_hash(*paths: Path, extra: str = "") -> str:
    h = hashlib.sha1()
    for p in paths:
        h.update(p.read_bytes())
    h.update(extra.encode())
    return h.hexdigest()[:16]


def export_teacher(model: LogitModel, tok: PairTokenizer, out_dir: str | Path, *, base_model: str,
                   scale: dict, calibration: dict, check_pairs: JudgedPairs, training: dict | None = None,
                   parity: TeacherParity | None = None, threads: int = 2, opset: int = 17) -> CrossEncoderManifest:
    """Write ``out_dir`` (model.onnx, model.int8.onnx, tokenizer.json, cross_encoder.json) and verify it."""
    parity = parity or TeacherParity()
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu")
    dummy = tok(["angle bracket", "led bulb"], ["simpson strong-tie angle", "a much longer product title here"])
    args = tuple(torch.from_numpy(getattr(dummy, n)) for n in PAIR_INPUT_NAMES)
    axes = {n: {0: "batch", 1: "sequence"} for n in PAIR_INPUT_NAMES}
    axes[LOGIT_NAME] = {0: "batch"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, args, str(d / "model.onnx"), input_names=list(PAIR_INPUT_NAMES),
                          output_names=[LOGIT_NAME], dynamic_axes=axes, opset_version=opset,
                          do_constant_folding=True, dynamo=False)
    (d / "tokenizer.json").write_bytes(tok.path.read_bytes())
    manifest = CrossEncoderManifest(
        base_model=base_model, max_length=tok.max_length, grade_scale=scale, calibration=calibration,
        model_version="", training=training or {},
    )
    manifest.model_version = "ce-" + _file_hash(d / "model.onnx", d / "tokenizer.json",
                                                 extra=json.dumps([calibration, tok.max_length], sort_keys=True))
    manifest.write(d)
    try:
        quantize_int8(d / "model.onnx", d / "model.int8.onnx", QuantizeConfig())
        manifest.files["int8"] = "model.int8.onnx"
        manifest.write(d)
    except (ValueError, RuntimeError) as exc:  # a graph the quantiser cannot handle stays fp32-only
        manifest.parity["int8_error"] = str(exc).splitlines()[0]
    manifest.parity.update(measure_parity(model, tok, d, check_pairs, manifest, parity, threads))
    manifest.recommended_variant = "int8" if manifest.parity.get("int8_passed") else "fp32"
    manifest.write(d)
    if not manifest.parity["fp32_passed"]:
        raise BundleError(f"{d}: ONNX fp32 logits differ from torch by {manifest.parity['fp32_max_abs_diff']:.2e} "
                          f"(limit {parity.fp32_max_abs})")
    return manifest


def measure_parity(model: LogitModel, tok: PairTokenizer, d: Path, pairs: JudgedPairs,
                   manifest: CrossEncoderManifest, parity: TeacherParity, threads: int) -> dict[str, object]:
    """The figures of the module docstring, plus each variant's pairs/s on ``pairs``."""
    ref = predict_logits(model, tok, pairs)
    lo, hi = float(manifest.grade_scale["lowest"]), float(manifest.grade_scale["highest"])
    out: dict[str, object] = {"pairs": len(pairs)}
    scored: dict[str, np.ndarray] = {}
    for variant in manifest.files:
        scorer = CrossEncoderScorer(d, variant=variant, threads=threads)
        t0 = time.perf_counter()
        scored[variant] = scorer.logits(pairs.queries, pairs.texts)
        out[f"{variant}_pairs_per_s"] = len(pairs) / max(time.perf_counter() - t0, 1e-9)
    diff = float(np.abs(scored["fp32"] - ref).max()) if len(pairs) else 0.0
    out.update(fp32_max_abs_diff=diff, fp32_passed=diff <= parity.fp32_max_abs)
    if "int8" in scored and len(pairs) > 2:
        to_grade = lambda x: calibrate(1 / (1 + np.exp(-x.astype(np.float64))), manifest.calibration, lo, hi)  # noqa: E731
        g32, g8 = to_grade(scored["fp32"]), to_grade(scored["int8"])
        corr = float(np.corrcoef(scored["fp32"], scored["int8"])[0, 1])
        mean_diff = float(np.abs(g32 - g8).mean())
        out.update(
            int8_corr=corr, int8_mean_grade_diff=mean_diff, int8_max_grade_diff=float(np.abs(g32 - g8).max()),
            int8_query_tau_vs_fp32=validation_figures(_relabel(pairs, scored["fp32"]), scored["int8"])["kendall_tau"],
            int8_passed=corr >= parity.int8_min_corr and mean_diff <= parity.int8_max_mean_grade_diff * (hi - lo),
            thresholds={"fp32_max_abs": parity.fp32_max_abs, "int8_min_corr": parity.int8_min_corr,
                        "int8_max_mean_grade_diff": parity.int8_max_mean_grade_diff},
        )
    return out


def _relabel(pairs: JudgedPairs, grades: np.ndarray) -> JudgedPairs:
    """``pairs`` with ``grades`` as its labels (to measure agreement between two scorers)."""
    return JudgedPairs(pairs.queries, pairs.pin_ids, pairs.texts, np.asarray(grades, dtype=np.float64),
                       pairs.split, pairs.scale)
