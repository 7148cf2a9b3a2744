"""``export_bundle``: a training run (or just the base model) → a bundle directory.

Layout (contract in ``docs/architecture.md``)::

    BUNDLE/query/{model.onnx, model.int8.onnx, tokenizer.json, tokenizer_config.json, manifest.json}
    BUNDLE/pin/  {same files}                 # the frozen pin tower: base model + mean pool + L2
    BUNDLE/eval_report.json                   # copied from the run, when it has one

Each tower is exported, quantised and then verified against torch; a failed check raises
:class:`encoders.export.parity.ParityError` and leaves the failing tower directory for inspection.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from encoders.export.config import ExportOptions
from encoders.export.manifest import build_manifest
from encoders.export.onnx_export import build_pin_tower, export_onnx
from encoders.export.parity import ParityReport, check_parity, measure_parity
from encoders.export.quantize import fuse_transformer, quantize_int8
from encoders.model.base_model import resolve_base_model
from encoders.model.tower import QueryTower, TowerConfig, load_tokenizer
from encoders.runtime.manifest import BundleManifest


@dataclass
class TowerExport:
    """One exported tower: its directory, manifest and the parity figures measured."""

    kind: str
    directory: Path
    manifest: BundleManifest
    parity: ParityReport


@dataclass
class BundleExport:
    """The written bundle: root directory and the towers in it (``"query"``, ``"pin"``)."""

    out: Path
    towers: dict[str, TowerExport]


def load_run_tower(run_dir: str | Path, base_model: str | Path | None = None) -> QueryTower:
    """Load ``tower_config.json`` + ``tower.pt`` from a run; ``base_model`` overrides the recorded path."""
    run = Path(run_dir)
    for name in ("tower_config.json", "tower.pt"):
        if not (run / name).is_file():
            raise FileNotFoundError(f"{run / name} not found: expected a run directory written by `searchsage train`")
    if base_model is None:
        return QueryTower.load(run)
    import torch
    from transformers import AutoConfig, AutoModel

    config = TowerConfig.from_json((run / "tower_config.json").read_text())
    config.base_model = str(resolve_base_model(base_model))
    tower = QueryTower(config, encoder=AutoModel.from_config(AutoConfig.from_pretrained(config.base_model)))
    tower.load_state_dict(torch.load(run / "tower.pt", map_location="cpu", weights_only=True))
    return tower.eval()


def model_label(base_model: str | Path) -> str:
    """A readable name for a local model directory: its name, or its parent's for generic names."""
    p = Path(base_model)
    return p.parent.name if p.name in ("model", "models", "hf", "transformers") and p.parent.name else p.name


def recommend_variants(report: ParityReport, invariance: float = 0.9999) -> dict[str, str]:
    """Which variant to use where (see docs/onnx.md). Writers and readers of one store must agree.

    int8 is recommended for materialisation *and* live encoding only when it is batch-invariant
    (per-token activations: batched-vs-single cosine >= ``invariance``); otherwise a cached
    (batched) vector and a live (single) one of the same query would differ, so fp32 is used for
    everything that is stored and int8 only for throwaway bulk scoring.
    """
    int8_ok = report.batch_vs_single.get("int8", {}).get("cos_min", 0.0) >= invariance
    if int8_ok:
        return {"materialize": "int8", "live": "int8", "reference": "fp32"}
    return {"materialize": "fp32", "live": "fp32", "bulk_scoring": "int8", "reference": "fp32"}


def export_tower(
    tower: QueryTower, kind: str, tower_dir: str | Path, options: ExportOptions, source: dict | None = None
) -> TowerExport:
    """Export, optionally fuse, quantise, write tokenizer + manifest, verify. Returns what was written."""
    d = Path(tower_dir)
    d.mkdir(parents=True, exist_ok=True)
    cfg = tower.config
    enc_cfg = tower.encoder.config
    steps = tqdm(total=4, desc=f"export {kind}", unit="step", disable=not options.progress)
    raw = d / "model.raw.onnx"
    export_onnx(tower, raw, vocab_size=int(enc_cfg.vocab_size), opset=options.opset)
    steps.update()
    if options.fuse:
        fuse_transformer(raw, d / "model.onnx", int(enc_cfg.num_attention_heads), int(enc_cfg.hidden_size))
        raw.unlink()
    else:
        raw.replace(d / "model.onnx")
    steps.update()
    quantize_int8(d / "model.onnx", d / "model.int8.onnx", options.quantize)
    steps.update()
    hf_tok = load_tokenizer(cfg.base_model)
    hf_tok.save_pretrained(d)
    if not (d / "tokenizer.json").is_file():
        raise FileNotFoundError(f"the tokenizer of {cfg.base_model} could not be saved as tokenizer.json (slow tokenizer?)")
    manifest = build_manifest(
        kind, d, dim=tower.out_dim, max_length=int(cfg.max_length), pooling=cfg.pooling,
        normalize=bool(cfg.normalize), base_model=model_label(cfg.base_model), opset=options.opset,
        source={**(source or {}), "fused": options.fuse, "quantize": asdict(options.quantize)},
    )
    manifest.write(d)
    report = measure_parity(tower, hf_tok, d, options.parity_texts, options.thresholds)
    manifest.parity = report.to_dict()
    manifest.recommended_variant = recommend_variants(report)
    manifest.write(d)
    steps.update()
    steps.close()
    check_parity(report, options.thresholds, where=f"{kind} tower in {d}")
    return TowerExport(kind, d, manifest, report)


def export_bundle(
    out: str | Path,
    run_dir: str | Path | None = None,
    base_model: str | Path | None = None,
    pin_only: bool = False,
    options: ExportOptions | None = None,
) -> BundleExport:
    """Write a bundle to ``out``: ``query/`` from ``run_dir`` (unless ``pin_only``) and ``pin/``.

    The pin tower is built from ``base_model`` if given, else the run's base model, else the packaged
    default. Raises ``FileNotFoundError`` for a bad run directory and ``ParityError`` on failed checks.
    """
    options = options or ExportOptions()
    out = Path(out)
    if run_dir is None and not pin_only:
        raise ValueError("a run directory is required to export the query tower (or ask for the pin tower only)")
    towers: dict[str, TowerExport] = {}
    pin_base: str | Path | None = base_model
    if not pin_only:
        assert run_dir is not None
        tower = load_run_tower(run_dir, base_model)
        pin_base = pin_base or tower.config.base_model
        towers["query"] = export_tower(tower, "query", out / "query", options, {"run": str(Path(run_dir).resolve())})
        report = Path(run_dir) / "eval_report.json"
        if report.is_file():
            shutil.copy2(report, out / "eval_report.json")
    pin_base = resolve_base_model(pin_base)
    pin = build_pin_tower(pin_base, options.pin_max_length)
    towers["pin"] = export_tower(pin, "pin", out / "pin", options, {"base_model_dir": str(pin_base)})
    return BundleExport(out, towers)
