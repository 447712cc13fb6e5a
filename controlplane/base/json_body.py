"""The one reader of JSON request bodies, for every JSON endpoint of the control
plane: a JSON object of at most ``max_body_bytes`` and ``MAX_DEPTH`` levels, or a
413/415/400 that says what is wrong."""

from __future__ import annotations

import json
import re
from typing import Any

from aiohttp import web

from controlplane.base.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType
from controlplane.base.settings import CONFIG

MAX_DEPTH = 32
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's body as a JSON object."""
    ctype = request.content_type
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise UnsupportedMediaType("the request body must be application/json")
    limit = request.app[CONFIG].security.max_body_bytes
    too_large = PayloadTooLarge(f"the request body is larger than {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    if len(raw) > limit:
        raise too_large
    return parse_json_object(raw)


def parse_json_object(raw: bytes, max_depth: int = MAX_DEPTH) -> dict[str, Any]:
    """``raw`` as a JSON object; :class:`BadRequest` if it is not UTF-8, not JSON,
    nested deeper than ``max_depth`` or not an object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8") from None
    if _depth(text) > max_depth:
        raise BadRequest(f"the JSON body nests deeper than {max_depth} levels")
    try:
        payload = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(payload, dict):
        raise BadRequest("the request body must be a JSON object")
    return payload


def _depth(text: str) -> int:
    """How deep the arrays and objects in ``text`` nest, before it is parsed.

    Brackets inside strings do not count; for text that is not JSON the answer
    only needs to be at least as deep as the parser would go.
    """
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
