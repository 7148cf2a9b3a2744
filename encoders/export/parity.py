"""Export self-checks: ONNX fp32 vs torch, int8 vs fp32, tokenizer parity, batch invariance.

All figures are measured on a fixed multilingual query set (:data:`PARITY_TEXTS`), encoded by
the torch tower and by :class:`encoders.runtime.BundleEncoder` from the written tower directory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from encoders.export.config import ParityThresholds  # re-exported: its home was here

#: Fixed query set: short product queries, several scripts, an empty string and an over-long one.
PARITY_TEXTS: tuple[str, ...] = (
    "angle bracket", "LED light bulb", "cordless drill 18v", "bathroom vanity with sink", "oak table",
    "garden hose 50 ft", "white paint", "  Outdoor   CEILING fan ", "toilet seat", "kitchen faucet pull down",
    "copper pipe fitting 3/4", "storage bin with lid", "shower head", "wood screws #8", "door knob brass",
    "tile saw", "rug 5x8", "grill cover", "pine shelf bracket", "water heater 40 gallon",
    "lampe de chevet", "perceuse sans fil", "Wasserhahn Küche", "Gartenschlauch", "grifo de cocina",
    "lámpara de techo", "torneira cozinha", "lampada led", "кухонный кран", "садовый шланг",
    "キッチン 蛇口", "LED電球", "厨房水龙头", "花园软管", "수도꼭지", "مصباح ليد", "נורת לד", "ψυγείο",
    "çekiç", "żarówka led", "", "a", "2x4", "?!", "ÉCLAIRAGE EXTÉRIEUR",
    "very long query " + " ".join(f"word{i}" for i in range(200)),
    "stainless steel sink undermount double bowl 33 inch with faucet and drain kit included",
)


class ParityError(ValueError):
    """An exported model differs from its reference by more than the thresholds allow."""


@dataclass
class ParityReport:
    """What export measured (recorded in ``manifest.json:parity``).

    ``fp32_max_abs_diff``: max |ONNX fp32 − torch| over all N×D values; ``int8_cos_*``: row cosine
    int8 vs fp32; ``batch_vs_single``: per variant, row cosine of one batched call vs one call per text.
    """

    n_texts: int
    tokenizer_match: bool
    fp32_max_abs_diff: float
    int8_cos_mean: float
    int8_cos_min: float
    batch_vs_single: dict[str, dict[str, float]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    passed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of matching rows of ``a`` and ``b`` (both ``(N, D)``) → ``(N,)`` float64."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(den, 1e-12)


def tokenizer_mismatches(hf_tokenizer: Any, tower_dir: Path, texts: list[str], max_length: int) -> list[int]:
    """Positions where the bundle tokenizer's ids differ from the transformers tokenizer's."""
    from encoders.runtime.manifest import BundleManifest
    from encoders.runtime.tokenize import BundleTokenizer

    manifest = BundleManifest.read(tower_dir)
    ours = BundleTokenizer(tower_dir / manifest.tokenizer, max_length).encode(texts)
    ref = hf_tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    return [i for i, (a, b) in enumerate(zip(ours, ref, strict=True)) if list(a) != list(b)]


def batch_vs_single(tower_dir: Path, variant: str, texts: list[str]) -> dict[str, float]:
    """Row cosine between one padded batch of all ``texts`` and one call per text."""
    from encoders.runtime.bundle import BundleEncoder

    enc = BundleEncoder(tower_dir, variant=variant, threads=1, batch_size=len(texts), sort_by_length=False,
                        max_tokens=None)
    batched = enc.encode(texts)
    single = np.concatenate([enc.encode([t]) for t in texts])
    cos = row_cosine(batched, single)
    return {"cos_mean": float(cos.mean()), "cos_min": float(cos.min())}


def measure_parity(
    tower: Any,
    hf_tokenizer: Any,
    tower_dir: str | Path,
    texts: list[str] | None = None,
    thresholds: ParityThresholds | None = None,
) -> ParityReport:
    """Measure every figure of :class:`ParityReport` for the tower directory (``.passed`` vs thresholds).

    ``tower`` is the torch module that was exported (``forward(ids, mask) -> (N, D)``) and carries
    ``.config`` (a ``TowerConfig``); query normalisation follows the manifest.
    """
    from encoders.model.tower import encode_texts
    from encoders.runtime.bundle import BundleEncoder

    tower_dir = Path(tower_dir)
    thresholds = thresholds or ParityThresholds()
    texts = list(PARITY_TEXTS if texts is None else texts)
    fp32 = BundleEncoder(tower_dir, variant="fp32", threads=2, batch_size=len(texts))
    int8 = BundleEncoder(tower_dir, variant="int8", threads=2, batch_size=len(texts))
    prepared = fp32.prepare(texts)
    max_length = fp32.manifest.max_length
    ref = encode_texts(tower, hf_tokenizer, prepared, max_length, batch_size=len(texts), normalize_as_query=False)
    ref = ref.numpy()
    a = fp32.encode(texts)
    b = int8.encode(texts)
    cos8 = row_cosine(a, b)
    report = ParityReport(
        n_texts=len(texts),
        tokenizer_match=not tokenizer_mismatches(hf_tokenizer, tower_dir, prepared, max_length),
        fp32_max_abs_diff=float(np.abs(a - ref).max()) if len(texts) else 0.0,
        int8_cos_mean=float(cos8.mean()),
        int8_cos_min=float(cos8.min()),
        batch_vs_single={v: batch_vs_single(tower_dir, v, texts) for v in ("fp32", "int8")},
        thresholds=asdict(thresholds),
    )
    report.passed = not violations(report, thresholds)
    return report


def violations(report: ParityReport, thresholds: ParityThresholds) -> list[str]:
    """Human-readable list of every threshold the report breaks (empty when it passes)."""
    out = []
    if not report.tokenizer_match:
        out.append("bundle tokenizer.json tokenises differently from the transformers tokenizer")
    if not report.fp32_max_abs_diff <= thresholds.fp32_max_abs:
        out.append(f"fp32 max |onnx - torch| = {report.fp32_max_abs_diff:.3g} > {thresholds.fp32_max_abs:g}")
    if not report.int8_cos_mean >= thresholds.int8_cos_mean:
        out.append(f"int8 mean cosine to fp32 = {report.int8_cos_mean:.4f} < {thresholds.int8_cos_mean:g}")
    if not report.int8_cos_min >= thresholds.int8_cos_min:
        out.append(f"int8 min cosine to fp32 = {report.int8_cos_min:.4f} < {thresholds.int8_cos_min:g}")
    return out


def check_parity(report: ParityReport, thresholds: ParityThresholds, where: str = "") -> None:
    """Raise :class:`ParityError` listing every violated threshold."""
    bad = violations(report, thresholds)
    if bad:
        raise ParityError(f"export parity check failed{f' for {where}' if where else ''}: " + "; ".join(bad))
