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


def parse_embed_body(body: bytes, limits: RequestLimits) -> list[str]:
    """``{"queries": [str, ...]}`` -> the normalised queries (same order, duplicates kept).

    Raises :class:`BadRequest`: 413 for an oversize body, 400 for bytes that are not a JSON
    object, 422 for a missing/empty/oversize ``queries`` list, a non-string, an overlong query or
    one that is empty after normalisation.
    """
    if len(body) > limits.max_body_bytes:
        raise BadRequest(413, f"request body is larger than {limits.max_body_bytes} bytes")
    if not body.strip():
        raise BadRequest(400, 'empty request body; expected JSON like {"queries": ["angle bracket"]}')
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRequest(400, f"request body is not valid UTF-8 JSON: {exc}") from None
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
            raise BadRequest(422, f"queries[{i}] must be a string, got {type(q).__name__}: {json.dumps(q)[:80]}")
        if len(q) > limits.max_query_chars:
            raise BadRequest(422, f"queries[{i}] has {len(q)} characters, the limit is {limits.max_query_chars}")
        norm = normalize_query(q)
        if not norm:
            raise BadRequest(422, f"queries[{i}] is empty after normalisation (whitespace only)")
        out.append(norm)
    return out
