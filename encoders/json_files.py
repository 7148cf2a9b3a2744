"""Reading the JSON files the project writes (reports, results summaries) with one clear error."""

from __future__ import annotations

import json
from pathlib import Path


def read_json_object(path: str | Path, what: str, error: type[Exception] = ValueError) -> dict:
    """The JSON object in ``path``; ``error`` (naming the file and ``what`` wrote it) when the file is
    missing, not JSON, or not an object."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{p} not found ({what})")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{p} is not valid JSON ({exc}); it is {what} — re-run that command") from None
    if not isinstance(data, dict):
        raise error(f"{p}: expected a JSON object, got {type(data).__name__}")
    return data
