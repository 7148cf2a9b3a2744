"""``searchsage export`` (run → ONNX bundle) and ``searchsage encode`` (file → Feast offline parquet)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from encoders.cli_support import add_config_options, add_pin_feedback_options, config_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` and ``encode`` sub-commands: the inputs are declared here, the options come
    from :class:`~encoders.export.config.ExportOptions` and :class:`~encoders.runtime.config.EncodeConfig`."""
    from encoders.export.config import ExportOptions
    from encoders.runtime.config import EncodeConfig

    p = subparsers.add_parser(
        "export", help="export a trained query tower and the frozen pin tower to an ONNX bundle",
        description="Write BUNDLE/query and BUNDLE/pin (model.onnx fp32, model.int8.onnx, tokenizer.json, "
        "manifest.json) and verify them: fp32 vs torch max abs diff, int8 cosine to fp32. Fails past thresholds.",
    )
    p.add_argument("--run", type=Path, help="run directory from `searchsage train` (tower_config.json + tower.pt)")
    p.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    p.add_argument("--pin-only", action="store_true", help="export only the frozen pin tower (no --run needed)")
    p.add_argument("--base-model", help="local transformers directory (overrides the run's recorded base model)")
    add_config_options(p, ExportOptions)
    p.set_defaults(func=run_export)

    e = subparsers.add_parser(
        "encode", help="stream a parquet/CSV file through a bundle into a Feast offline-source parquet",
        description="Encode the texts of INPUT in chunks and write OUT.parquet with the entity key "
        "(`query`, normalised, or `pin_id`), `embedding` list<float32>, `model_version`, `event_timestamp` (UTC).",
    )
    add_config_options(e, EncodeConfig, skip=("progress",))
    add_pin_feedback_options(e, "with --pin-feedback")  # --prf-k/--prf-weight: PinFeedback's defaults
    add_config_options(e, EncodeConfig, only=("progress",))
    e.set_defaults(func=run_encode)


def run_export(args: argparse.Namespace) -> int:
    from encoders.cli_support import CLIError
    from encoders.export.bundle import export_bundle
    from encoders.export.config import ExportOptions
    from encoders.export.parity import ParityError

    if args.run is None and not args.pin_only:
        raise CLIError("export needs --run RUN (a `searchsage train` directory), or --pin-only")
    options = config_from_args(ExportOptions, args)
    try:
        result = export_bundle(args.out, args.run, args.base_model, args.pin_only, options)
    except (ParityError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    for kind, t in result.towers.items():
        p = t.parity
        print(f"{kind}: {t.directory}  D={t.manifest.dim}  version={t.manifest.model_version}  "
              f"fp32 max|Δ|={p.fp32_max_abs_diff:.2e}  int8 cos mean={p.int8_cos_mean:.4f} min={p.int8_cos_min:.4f}")
    return 0


def run_encode(args: argparse.Namespace) -> int:
    from encoders.cli_support import CLIError
    from encoders.runtime import BundleEncoder, BundleError
    from encoders.runtime.config import EncodeConfig
    from encoders.runtime.pin_feedback import load_pin_feedback
    from encoders.runtime.stream import EncodeInputError, encode_file

    config = config_from_args(EncodeConfig, args)
    feedback = None
    if config.pin_feedback is not None:
        try:
            feedback = load_pin_feedback(config.pin_feedback, config.prf_k, config.prf_weight)
        except ValueError as exc:
            raise CLIError(f"--pin-feedback {exc}") from None
    try:
        enc = BundleEncoder(config.bundle, variant=config.variant, threads=config.threads,
                            batch_size=config.batch_size, kind=config.kind, expect_dim=config.expect_dim)
        res = encode_file(enc, config.input, config.out, column=config.column, key_column=config.key_column,
                          chunk_rows=config.chunk_rows, event_timestamp=config.event_timestamp,
                          encoding=config.encoding, progress=config.progress, feedback=feedback)
    except (BundleError, EncodeInputError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps({"out": str(res.out), "rows_in": res.rows_in, "rows_out": res.rows_out,
                      "rows_skipped": res.rows_skipped, "chunks": res.chunks, "seconds": round(res.seconds, 2),
                      "rows_per_s": round(res.rows_per_s, 1), "model_version": res.model_version, "dim": res.dim}))
    return 0
