"""Model cards (Markdown) for the relevance teacher and student, written next to each model.

Pure functions of the JSON each training writes (``teacher.json`` + ``onnx/cross_encoder.json``;
``student.json``), so a card always says what the saved model measured, nothing else.
"""

from __future__ import annotations

from typing import Any

CARD_NAME = "MODEL_CARD.md"


def _f(v: Any, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, (int, float)) and v == v else "–"


def teacher_card(meta: dict[str, Any], manifest: dict[str, Any]) -> str:
    """The teacher's card from ``teacher.json`` (``meta``) and ``cross_encoder.json`` (``manifest``)."""
    cfg, res, scale = meta["config"], meta["result"], meta["grade_scale"]
    val = res.get("validation") or {}
    par = manifest.get("parity", {})
    lines = [
        "# Relevance teacher (cross-encoder)", "",
        "**Intended use**: grading (query, item text) pairs on the judgments' scale: labels for distilling the "
        "student, offline relevance evaluation, model labels for A/B relevance (always corrected by a judged sample, "
        "see docs/statistics.md). Not a retrieval model: it scores given pairs, 100s per second on a CPU.", "",
        "| | |", "|---|---|",
        f"| base model | {manifest.get('base_model')} |",
        f"| input | `[CLS] query [SEP] text [SEP]`, at most {manifest.get('max_length')} tokens |",
        f"| grade scale | {scale['lowest']:g} to {scale['highest']:g}"
        + (f" (levels {', '.join(f'{x:g}' for x in scale['levels'])})" if scale.get("levels") else " (continuous)")
        + " |",
        f"| training | {res['steps']} steps, {_f(res['epochs_done'], 2)} epochs of the train split, {res['seconds']:.0f} s; "
        f"loss {_f(res['initial_loss'])} → {_f(res['final_loss'])}; lr {cfg['lr']:g}, pairwise weight "
        f"{cfg['pairwise_weight']:g}, {cfg['precision']} |",
        f"| model version | `{manifest.get('model_version')}` (recommended variant: {manifest.get('recommended_variant')}) |",
        "", "## Validation split (md5(query) % 10 == 1)", "",
        f"Kendall tau (mean over {val.get('queries', 0)} queries with two or more grades): {_f(val.get('kendall_tau'))}",
        "",
    ]
    if val.get("calibration"):
        before, after = val["calibration_uncalibrated"], val["calibration"]
        lines += [
            "| calibration | MAE | RMSE | ECE |", "|---|---|---|---|",
            f"| sigmoid mapped linearly onto the scale | {_f(before['mae'])} | {_f(before['rmse'])} | {_f(before['ece'])} |",
            f"| isotonic (the shipped model) | {_f(after['mae'])} | {_f(after['rmse'])} | {_f(after['ece'])} |", "",
            "| predicted grade (bin mean) | human grade (bin mean) | pairs |", "|---|---|---|",
            *[f"| {_f(b['predicted'], 2)} | {_f(b['human'], 2)} | {b['count']} |" for b in after["bins"]], "",
        ]
    lines += [
        "## Export checks", "",
        f"fp32 ONNX vs torch: max |logit difference| {par.get('fp32_max_abs_diff', float('nan')):.1e}. "
        f"int8 vs fp32 on {par.get('pairs', 0)} validation pairs: logit correlation {_f(par.get('int8_corr'), 4)}, "
        f"mean |grade difference| {_f(par.get('int8_mean_grade_diff'), 4)}; int8 "
        + ("passed" if par.get("int8_passed") else "did not pass") + " the gate. "
        f"Throughput in that check: fp32 {_f(par.get('fp32_pairs_per_s'), 0)} pairs/s, "
        f"int8 {_f(par.get('int8_pairs_per_s'), 0)} pairs/s.", "",
        "## Limits", "",
        "- Learns the judges' notion of relevance from the judged pairs only; queries unlike the training queries "
        "(other languages, other catalogues) are out of distribution.",
        "- Grades are calibrated on the validation split's distribution of pairs; on retrieved candidates (mostly "
        "unjudged, mostly weaker) the calibration is an extrapolation: check it on a judged sample (PPI does).",
    ]
    return "\n".join(lines) + "\n"


def student_card(manifest: dict[str, Any]) -> str:
    """The student's card from its ``student.json``."""
    tr = manifest.get("training", {})
    fams = tr.get("families", {})
    scale = manifest.get("grade_scale", {})
    lines = [
        "# Relevance student", "",
        "**Intended use**: grading every result a ranker retrieves, at serving scale, from online features "
        "(read through Feast); trained on the teacher's grades, chosen on the validation split.", "",
        "| | |", "|---|---|",
        f"| family | {manifest.get('family')} |",
        f"| features | {', '.join(manifest.get('feature_names', []))} |",
        f"| grade scale | {scale.get('lowest', '?')} to {scale.get('highest', '?')} |",
        f"| training rows / validation rows | {tr.get('train_rows')} / {tr.get('validation_rows')} |",
        f"| feature source | {tr.get('source')} |",
        f"| chosen on | {tr.get('select_on')} |", "",
        "| family | " + " | ".join(sorted({k for f in fams.values() for k in f["validation"]})) + " | fit s |",
        "|---|" + "---|" * (len({k for f in fams.values() for k in f["validation"]}) + 1),
    ]
    keys = sorted({k for f in fams.values() for k in f["validation"]})
    for name, f in fams.items():
        lines.append(f"| {name} | " + " | ".join(_f(f["validation"].get(k), 4) for k in keys) + f" | {f['seconds']} |")
    lines += ["", "## Limits", "",
              "- A student is only as good as its teacher on the pairs it was distilled on; judge a sample (PPI).",
              "- Engagement features come from training queries only (out of fold for training rows); a new "
              "pin has none, like a cold-start item online."]
    return "\n".join(lines) + "\n"
