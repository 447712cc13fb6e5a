"""The JSON the call endpoints read and write: a request body that must be a JSON
object, and responses that no cache may keep.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controlplane.base.errors import BadRequest, UnsupportedMediaType


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; 415 or 400 (``calls_body_not_json``) otherwise."""
    if request.content_type != "application/json":
        raise UnsupportedMediaType("calls_body_not_json")
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("calls_body_not_json") from None
    if not isinstance(body, dict):
        raise BadRequest("calls_body_not_json")
    return body


def no_store(response: web.Response) -> web.Response:
    """``response``, marked so that no cache keeps it."""
    response.headers["Cache-Control"] = "no-store"
    return response


def no_store_json(data: Any, status: int = 200) -> web.Response:
    """``data`` as a JSON response that no cache keeps."""
    return no_store(web.json_response(data, status=status))
