"""The API's one body parser: JSON, strict, and no deeper than ``MAX_DEPTH``.

Every endpoint takes JSON only (forms and multipart are refused with 415), so no request spools
files to disk. Python's parser recurses once per level: a body nested thousands deep raises
``RecursionError`` there, or later in whatever walks the data (validation, the idempotency
fingerprint); both are refused here with 400 before any view sees the data. Size is bounded
before this runs (core/middleware.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# The deepest body the API takes: an order is 3 levels deep ({"items": [{...}]}); 32 leaves room
# for any well-meant document and stays far below Python's recursion limit.
MAX_DEPTH = 32


def json_depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` (parsed JSON) nests more than ``limit`` levels; iterative, so it cannot recurse."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, Mapping):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


class BoundedJSONParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep.") from None
        if json_depth_exceeds(data, MAX_DEPTH):
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep.")
        return data
