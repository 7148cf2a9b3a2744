"""The homefeed evaluation report as files: ``eval_report.json`` and a Markdown rendering."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPORT_JSON = "eval_report.json"
REPORT_MD = "eval_report.md"
REPORT_HINT = "written by `searchsage homefeed evaluate --out DIR`"
#: Keys every reader of the report relies on, with their JSON types.
REQUIRED = {"model_version": str, "ks": list, "users": int, "pairs": dict, "corpora": dict, "systems": dict,
            "comparisons": list, "corpus_effect": list}


class HomefeedReportError(ValueError):
    """An ``eval_report.json`` of homefeed is missing or malformed; the message names the file and the fix."""


def _ci(ci: dict[str, float]) -> str:
    return f"{ci['diff']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]"


def render_markdown(r: dict[str, Any]) -> str:
    """Recall tables per corpus (overall and per action), the paired comparisons and the corpus effect."""
    ks = r["ks"]
    slices = list(r["pairs"])
    lines = [f"# Homefeed retrieval — {r['model_version']}", "",
             f"Split {r['split_iso']}; {r['users']:,} eval users; target pairs: "
             + ", ".join(f"{s} {n:,}" for s, n in r["pairs"].items())
             + f"; time-decay half-life {r['half_life_days']:g} days.", ""]
    for corpus, info in r["corpora"].items():
        cov = ", ".join(f"{s} {v:.3f}" for s, v in info["coverage"].items())
        lines += [f"## Corpus `{corpus}` ({info['size']:,} pins; share of target pairs indexed: {cov})", "",
                  "| system | " + " | ".join(f"{s} R@{k}" for s in slices for k in ks) + " |",
                  "|---|" + "---:|" * (len(slices) * len(ks))]
        for name, per in r["systems"].items():
            rec = per[corpus]
            lines.append(f"| {name} | " + " | ".join(f"{rec[s][str(k)]:.4f}"
                                                      for s in slices for k in ks) + " |")
        lines.append("")
    lines += ["## Tower minus each baseline (overall recall, paired bootstrap 95% CI over users)", "",
              "| baseline | corpus | " + " | ".join(f"Δ R@{k}" for k in ks) + " |",
              "|---|---|" + "---|" * len(ks)]
    for c in r["comparisons"]:
        lines.append(f"| {c['b']} | {c['corpus']} | " + " | ".join(_ci(c["ci"][str(k)]) for k in ks) + " |")
    lines += ["", "## Serving corpus effect (same system, corpus a minus corpus b)", "",
              "| system | a − b | " + " | ".join(f"Δ R@{k}" for k in ks) + " |", "|---|---|" + "---|" * len(ks)]
    for c in r["corpus_effect"]:
        lines.append(f"| {c['system']} | {c['a']} − {c['b']} | "
                     + " | ".join(_ci(c["ci"][str(k)]) for k in ks) + " |")
    cond = r.get("conditional")
    if cond:
        lines += ["", f"## Conditional retrieval ({cond['requests']:,} (user, interest) requests, "
                  f"{cond['pairs']:,} pairs, corpus `{cond['corpus']}`)", "",
                  "| | " + " | ".join(f"R@{k}" for k in ks) + " |", "|---|" + "---:|" * len(ks),
                  "| unconditioned | " + " | ".join(f"{cond['unconditional'][str(k)]:.4f}" for k in ks) + " |",
                  "| conditioned on the pin's interest | "
                  + " | ".join(f"{cond['conditional'][str(k)]:.4f}" for k in ks) + " |",
                  "| Δ (paired CI) | " + " | ".join(_ci(cond["comparison"][str(k)]) for k in ks) + " |"]
    lines += ["", f"_{r['seconds']:.0f} s_", ""]
    return "\n".join(lines)


def _json_ready(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_ready(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_ready(v) for v in obj]
    return obj


def write_report(report: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``eval_report.json`` (keys as strings) and ``eval_report.md``; returns their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ready = _json_ready(report)
    (out / REPORT_JSON).write_text(json.dumps(ready, indent=2))
    (out / REPORT_MD).write_text(render_markdown(ready))
    return out / REPORT_JSON, out / REPORT_MD


def read_report(path: str | Path) -> dict[str, Any]:
    """The report at ``path`` (``eval_report.json``, or the directory holding it), its keys checked
    (:data:`REQUIRED`; every system has every corpus of ``corpora``); :class:`HomefeedReportError` otherwise."""
    from encoders.json_files import read_json_object

    p = Path(path)
    if p.is_dir():
        p = p / REPORT_JSON
    report = read_json_object(p, REPORT_HINT, HomefeedReportError)
    for key, typ in REQUIRED.items():
        if not isinstance(report.get(key), typ):
            raise HomefeedReportError(f"{p}: key {key!r} missing or not a {typ.__name__} — not a homefeed "
                                      f"evaluation report ({REPORT_HINT})")
    for name, per in report["systems"].items():
        missing = sorted(set(report["corpora"]) - set(per))
        if missing:
            raise HomefeedReportError(f"{p}: system {name!r} has no recall for corpus {missing[0]!r} ({REPORT_HINT})")
    return report
