"""Parse and check ``POST /embed`` bodies (pure; no I/O). Every rejection names what was wrong."""

from __future__ import annotations

import json
from dataclasses import dataclass

from encoders.normalize import normalize_query


class BadRequest(ValueError):
    """A client error: ``status`` (4xx) and a message saying what was expected."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class RequestLimits:
    """Bounds on one request: body bytes, queries per request, characters per query."""

    max_body_bytes: int = 1_000_000
    max_queries: int = 256
    max_query_chars: int = 1024


def check_content_type(value: str | None) -> None:
    """Accept a JSON media type (or none); anything else is 415. ``charset`` must be UTF-8."""
    if value is None or not value.strip():
        return
    media, _, params = value.partition(";")
    media = media.strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise BadRequest(415, f"Content-Type {value[:80]!r} is not supported; send application/json")
    for param in params.split(";"):
        key, _, val = param.partition("=")
        if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise BadRequest(415, f"charset {val.strip()[:40]!r} is not supported; send UTF-8 JSON")


def _decode_utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(
            400, f"request body is not valid UTF-8: byte 0x{body[exc.start]:02x} at offset {exc.start} ({exc.reason})"
        ) from None


def _check_text(i: int, q: str, limits: RequestLimits) -> str:
    """One query -> its normalised form, or :class:`BadRequest` naming ``queries[i]`` and the position."""
    if len(q) > limits.max_query_chars:
        raise BadRequest(422, f"queries[{i}] has {len(q)} characters, the limit is {limits.max_query_chars}")
    if not q.isascii():
        try:
            q.encode("utf-8")
        except UnicodeEncodeError as exc:  # only lone surrogates (e.g. "\\ud800" in JSON) fail here
            raise BadRequest(
                400, f"queries[{i}] has a lone surrogate U+{ord(q[exc.start]):04X} at character {exc.start}; "
                "send valid Unicode text"
            ) from None
    norm = normalize_query(q)
    if not norm:
        raise BadRequest(422, f"queries[{i}] is empty after normalisation (whitespace only)")
    return norm


def parse_embed_body(body: bytes, limits: RequestLimits) -> list[str]:
    """``{"queries": [str, ...]}`` -> the normalised queries (same order, duplicates kept).

    Raises :class:`BadRequest`: 413 for an oversize body; 400 for bytes that are not UTF-8 (the
    offset named), not JSON or nested too deep, not a JSON object, or a query holding a lone
    surrogate (its position named); 422 for a missing/empty/oversize ``queries`` list, a
    non-string, an overlong query or one that is empty after normalisation.
    """
    if len(body) > limits.max_body_bytes:
        raise BadRequest(413, f"request body is larger than {limits.max_body_bytes} bytes")
    if not body.strip():
        raise BadRequest(400, 'empty request body; expected JSON like {"queries": ["angle bracket"]}')
    text = _decode_utf8(body)
    try:
        payload = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, and e.g. integers with more than 4300 digits
        raise BadRequest(400, f"request body is not valid UTF-8 JSON: {str(exc)[:200]}") from None
    except RecursionError:
        raise BadRequest(400, "request body is not valid UTF-8 JSON: nested too deeply") from None
    if not isinstance(payload, dict):
        raise BadRequest(400, f'expected a JSON object like {{"queries": [...]}}, got {type(payload).__name__}')
    if "queries" not in payload:
        raise BadRequest(422, 'missing field "queries" (a list of query strings)')
    queries = payload["queries"]
    if not isinstance(queries, list):
        raise BadRequest(422, f'"queries" must be a list of strings, got {type(queries).__name__}')
    if not queries:
        raise BadRequest(422, '"queries" is empty; send at least one query')
    if len(queries) > limits.max_queries:
        raise BadRequest(
            422, f'too many queries: {len(queries)} in one request, the limit is {limits.max_queries}'
        )
    out: list[str] = []
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise BadRequest(422, f"queries[{i}] must be a string, got {type(q).__name__}: {_preview(q)}")
        out.append(_check_text(i, q, limits))
    return out


def _preview(value: object) -> str:
    try:
        return json.dumps(value)[:80]
    except (ValueError, RecursionError):
        return type(value).__name__
