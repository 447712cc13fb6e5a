"""The JSON the call endpoints write: responses that no cache may keep. (They read
bodies with :func:`controlplane.base.json_body.json_body`.)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


def no_store(response: web.Response) -> web.Response:
    """``response``, marked so that no cache keeps it."""
    response.headers["Cache-Control"] = "no-store"
    return response


def no_store_json(data: Any, status: int = 200) -> web.Response:
    """``data`` as a JSON response that no cache keeps."""
    return no_store(web.json_response(data, status=status))
