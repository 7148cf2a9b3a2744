"""``searchsage export`` (run → ONNX bundle) and ``searchsage encode`` (file → Feast offline parquet)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path

from encoders.cli_support import (
    add_config_options,
    add_pin_feedback_options,
    config_from_args,
    pin_feedback_from_args,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` and ``encode`` sub-commands."""
    from encoders.export.config import PIN_MAX_LENGTH, ParityThresholds

    p = subparsers.add_parser(
        "export", help="export a trained query tower and the frozen pin tower to an ONNX bundle",
        description="Write BUNDLE/query and BUNDLE/pin (model.onnx fp32, model.int8.onnx, tokenizer.json, "
        "manifest.json) and verify them: fp32 vs torch max abs diff, int8 cosine to fp32. Fails past thresholds.",
    )
    p.add_argument("--run", type=Path, help="run directory from `searchsage train` (tower_config.json + tower.pt)")
    p.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    p.add_argument("--pin-only", action="store_true", help="export only the frozen pin tower (no --run needed)")
    p.add_argument("--base-model", help="local transformers directory (overrides the run's recorded base model)")
    p.add_argument("--no-fuse", action="store_true", help="skip onnxruntime's offline BERT fusions")
    p.add_argument("--reduce-range", action="store_true", help="7-bit int8 weights (older CPUs without VNNI)")
    add_config_options(p, ParityThresholds)
    p.add_argument("--pin-max-length", type=int, default=PIN_MAX_LENGTH,
                   help=f"token limit of the pin tower (default {PIN_MAX_LENGTH})")
    p.set_defaults(func=run_export)

    e = subparsers.add_parser(
        "encode", help="stream a parquet/CSV file through a bundle into a Feast offline-source parquet",
        description="Encode the texts of INPUT in chunks and write OUT.parquet with the entity key "
        "(`query`, normalised, or `pin_id`), `embedding` list<float32>, `model_version`, `event_timestamp` (UTC).",
    )
    e.add_argument("--bundle", type=Path, required=True, help="bundle directory (or one tower directory)")
    e.add_argument("--kind", choices=("query", "pin"), required=True, help="which tower to use")
    e.add_argument("--input", type=Path, required=True, help="input .parquet or .csv")
    e.add_argument("--out", type=Path, required=True, help="output .parquet")
    e.add_argument("--column", help="text column (default: query for --kind query, text for pins)")
    e.add_argument("--key-column", help="entity key column for pins (default pin_id)")
    e.add_argument("--chunk-rows", type=int, default=50_000, help="rows per streamed chunk (default 50000)")
    e.add_argument("--variant", choices=("fp32", "int8"), default="fp32",
                   help="model variant (default fp32, like BundleEncoder); use the same variant as live "
                   "serving: int8 is batch-invariant and ~2x faster (docs/onnx.md)")
    e.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    e.add_argument("--batch-size", type=int, default=256, help="rows per onnxruntime call (default 256)")
    e.add_argument("--encoding", default="utf8", help="CSV text encoding (e.g. latin-1 for Home Depot)")
    e.add_argument("--event-timestamp", help="ISO timestamp for every row (default: now, UTC)")
    e.add_argument("--expect-dim", type=int, help="fail unless the bundle's D equals this")
    e.add_argument("--pin-feedback", type=Path, metavar="PINS_PARQUET",
                   help="query bundles: refine each query embedding towards the mean of its top pins in this "
                   "pins.parquet's `embedding` column (pin-space pseudo-relevance feedback; docs/training.md)")
    add_pin_feedback_options(e, "with --pin-feedback")
    e.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    e.set_defaults(func=run_encode)


def run_export(args: argparse.Namespace) -> int:
    from encoders.cli_support import CLIError
    from encoders.export.bundle import ExportOptions, export_bundle
    from encoders.export.parity import ParityError, ParityThresholds
    from encoders.export.quantize import QuantizeConfig

    if args.run is None and not args.pin_only:
        raise CLIError("export needs --run RUN (a `searchsage train` directory), or --pin-only")
    options = ExportOptions(
        fuse=not args.no_fuse, quantize=QuantizeConfig(reduce_range=args.reduce_range),
        thresholds=config_from_args(ParityThresholds, args),
        pin_max_length=args.pin_max_length,
    )
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
    from encoders.runtime.stream import EncodeInputError, encode_file

    ts = None
    if args.event_timestamp:
        try:
            ts = dt.datetime.fromisoformat(args.event_timestamp)
        except ValueError:
            raise CLIError(f"--event-timestamp {args.event_timestamp!r} is not an ISO timestamp") from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=dt.timezone.utc)
    feedback = _pin_feedback(args) if args.pin_feedback is not None else None
    try:
        enc = BundleEncoder(args.bundle, variant=args.variant, threads=args.threads, batch_size=args.batch_size,
                            kind=args.kind, expect_dim=args.expect_dim)
        res = encode_file(enc, args.input, args.out, column=args.column, key_column=args.key_column,
                          chunk_rows=args.chunk_rows, event_timestamp=ts, encoding=args.encoding,
                          progress=not args.no_progress, feedback=feedback)
    except (BundleError, EncodeInputError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    print(json.dumps({"out": str(res.out), "rows_in": res.rows_in, "rows_out": res.rows_out,
                      "rows_skipped": res.rows_skipped, "chunks": res.chunks, "seconds": round(res.seconds, 2),
                      "rows_per_s": round(res.rows_per_s, 1), "model_version": res.model_version, "dim": res.dim}))
    return 0


def _pin_feedback(args: argparse.Namespace):  # -> PinFeedbackIndex
    """The ``--pin-feedback`` pin index with ``--prf-k``/``--prf-weight`` (a CLIError naming the file or flag)."""
    from encoders.cli_support import CLIError
    from encoders.runtime.pin_feedback import load_pin_feedback

    if args.kind != "query":
        raise CLIError("--pin-feedback refines query embeddings; it needs --kind query")
    feedback = pin_feedback_from_args(args)
    try:
        return load_pin_feedback(args.pin_feedback, feedback.k, feedback.weight)
    except ValueError as exc:
        raise CLIError(f"--pin-feedback {exc}") from None
