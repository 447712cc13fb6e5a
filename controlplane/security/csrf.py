"""CSRF protection for every form: a signed double-submit token plus an Origin check.

Each browser gets a random anchor cookie; the token in a form is an HMAC of that
anchor under the server's secret, so a forged form from another site cannot carry it.
The JSON API under ``/api/`` uses API keys, not cookies, and is exempt.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from controlplane.base.errors import BadRequest, CsrfFailed
from controlplane.base.settings import CONFIG
from controlplane.security import cookies
from controlplane.security.secrets_store import SECRET_KEY

ANCHOR_COOKIE = "bb_csrf"
FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
_NEW_ANCHOR = web.RequestKey("csrf_new_anchor", str)
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def csrf_token(request: web.Request) -> str:
    """The token to put in this page's forms (sets the anchor cookie if new)."""
    anchor = _anchor(request)
    if anchor is None:
        anchor = request.get(_NEW_ANCHOR) or secrets.token_urlsafe(32)
        request[_NEW_ANCHOR] = anchor
    return _sign(request.app[SECRET_KEY], anchor)


def page_values(request: web.Request) -> dict[str, Any]:
    """``csrf_token()`` for every template."""
    return {"csrf_token": lambda: csrf_token(request)}


def _anchor(request: web.Request) -> str | None:
    return cookies.get_cookie(request, request.app[CONFIG], ANCHOR_COOKIE)


def _sign(key: bytes, anchor: str) -> str:
    return hmac.new(key, anchor.encode(), hashlib.sha256).hexdigest()


async def check(request: web.Request) -> None:
    """Raise :class:`CsrfFailed` unless an unsafe request carries a valid token."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and not _same_origin(request, origin):
        raise CsrfFailed("request from another site")
    anchor = _anchor(request)
    supplied = request.headers.get(HEADER)
    if supplied is None and request.content_type in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        try:
            form = await request.post()
        except (ValueError, LookupError, HttpProcessingError) as exc:
            # undecodable bytes, an unknown charset or a broken multipart body
            raise BadRequest("error_bad_request") from exc
        value = form.get(FIELD)
        supplied = value if isinstance(value, str) else None
    if not anchor or not supplied:
        raise CsrfFailed("missing form token")
    expected = _sign(request.app[SECRET_KEY], anchor)
    # compare_digest refuses non-ASCII text with a TypeError; such a token is wrong
    if not supplied.isascii() or not hmac.compare_digest(supplied, expected):
        raise CsrfFailed("wrong form token")


def _same_origin(request: web.Request, origin: str) -> bool:
    allowed = {_origin_of(request.app[CONFIG].server.public_url)}
    allowed.add(f"{request.scheme}://{request.host}")
    return _origin_of(origin) in allowed


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@web.middleware
async def csrf_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in UNSAFE and not request.path.startswith("/api/"):
        await check(request)
    response = await handler(request)
    new_anchor = request.get(_NEW_ANCHOR)
    if new_anchor is not None and not response.prepared:
        cookies.set_cookie(response, request.app[CONFIG], ANCHOR_COOKIE, new_anchor)
    return response
