"""JSON request bodies, read within bounds: their size and their nesting.

DRF's own JSON parser reads the request stream whatever its length (Django's
``DATA_UPLOAD_MAX_MEMORY_SIZE`` guards only ``request.body`` and forms), and lets
JSON nested a thousand levels deep reach code that recurses over it. This one reads
at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes (more is a 413) and refuses nesting
deeper than ``API_MAX_JSON_DEPTH`` and numbers too large to be stored again (1e999),
each a 400, all with a JSON message.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes (API_MAX_BODY_BYTES).")


def too_deep(depth: int) -> ParseError:
    return ParseError(
        f"JSON nested more than {depth} levels deep (API_MAX_JSON_DEPTH); "
        "nothing a job holds needs that."
    )


def nesting(value: Any, most: int) -> bool:
    """Whether ``value`` nests lists and objects more than ``most`` deep (without
    recursing: the walk itself cannot overflow)."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict | list):
            if depth > most:
                return True
            children = item.values() if isinstance(item, dict) else item
            pending.extend(
                (child, depth + 1) for child in children if isinstance(child, dict | list)
            )
    return False


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        if stream is None:
            return None
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read() if limit is None else stream.read(limit + 1)
        if limit is not None and len(raw) > limit:
            raise BodyTooLarge(limit)
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        depth = settings.API_MAX_JSON_DEPTH
        try:
            data = json.loads(
                raw.decode(encoding), parse_constant=_no_constant, parse_float=_finite
            )
        except RecursionError:
            raise too_deep(depth) from None
        except ValueError as exc:  # not JSON, not the encoding, a number too long
            raise ParseError(f"JSON parse error - {exc}") from None
        if nesting(data, depth):
            raise too_deep(depth)
        return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON.")


def _finite(text: str) -> float:
    """A number that can be stored again as JSON: 1e999 is infinite, which neither
    SQLite's JSON nor PostgreSQL's jsonb accepts."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text[:40]} is too large a number.")
    return number
