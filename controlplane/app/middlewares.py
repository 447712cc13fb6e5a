"""The control plane's middlewares: request context and log line, errors, headers."""

from __future__ import annotations

import asyncio
import time
import uuid
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from beeldbel.config import media_nodes
from beeldbel.http import hide_server_version
from controlplane.api import is_api, problem_response
from controlplane.app.health import PROBE_PATHS
from controlplane.base.errors import (
    ControlPlaneError,
    CsrfFailed,
    RateLimited,
    ValidationFailed,
)
from controlplane.base.i18n import CATALOG, Catalog, request_language
from controlplane.base.metrics import METRICS
from controlplane.base.rendering import render
from controlplane.base.settings import CONFIG

log = structlog.get_logger()

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' blob:; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": (
        "camera=(self), microphone=(self), geolocation=(), payment=()"
    ),
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


async def add_security_headers(
    request: web.Request, response: web.StreamResponse
) -> None:
    """``on_response_prepare`` hook, so streamed and error responses get them too."""
    await hide_server_version(request, response)
    # pages may open the WebSocket of any media node a room can be placed on
    origins = dict.fromkeys(
        _origin(node.ws_url) for node in media_nodes(request.app[CONFIG])
    )
    media = " ".join(origins)
    response.headers.setdefault(
        "Content-Security-Policy",
        CSP.replace("connect-src 'self'", f"connect-src 'self' {media}"),
    )
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.app[CONFIG].server.public_url.startswith("https://"):
        response.headers.setdefault(
            "Strict-Transport-Security", "max-age=63072000; includeSubDomains"
        )
    if request.path.startswith(("/staff", "/api/")) or response.status >= 400:
        response.headers.setdefault("Cache-Control", "no-store")


def _origin(url: str) -> str:
    """``wss://host:port`` of a URL: what the CSP lets pages connect to."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Binds a request id and writes one log line per request: no IP, no query."""
    request_id = uuid.uuid4().hex[:16]
    started = time.perf_counter()
    status = 500
    route = _route_name(request)
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            # redirects raised by guards (e.g. to the login) are not failures
            status = exc.status
            raise
        except asyncio.CancelledError:
            # the client went away (or the server stops) mid-request, e.g. an
            # event stream being closed: not a server error (nginx's 499)
            status = 499
            raise
        finally:
            elapsed = time.perf_counter() - started
            request.app[METRICS].http_duration.labels(
                route, request.method, str(status)
            ).observe(elapsed)
            # probes come every few seconds: at info they would drown the log
            (log.debug if request.path in PROBE_PATHS else log.info)(
                "http_request_handled",
                method=request.method,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 1),
            )


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return resource.canonical


@web.middleware
async def error_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error becomes a clear 4xx page or JSON body; anything else a logged 500."""
    try:
        return await handler(request)
    except ControlPlaneError as exc:
        if isinstance(exc, RateLimited):
            request.app[METRICS].rate_limited.labels(exc.message.split()[2]).inc()
        return _error_response(request, exc.status, exc.code, exc, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}
        response = _error_response(
            request, exc.status, code.get(exc.status, "bad_request"), None, {}
        )
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("request_failed", route=_route_name(request))
        return _error_response(request, 500, "internal_error", None, {})


def _error_response(
    request: web.Request,
    status: int,
    code: str,
    exc: ControlPlaneError | None,
    details: dict[str, str],
) -> web.StreamResponse:
    # API clients are programs: their messages are English
    lang = "en" if request.path.startswith("/api/") else request_language(request)
    catalog = request.app[CATALOG]
    message = _citizen_message(catalog, lang, status, exc)
    headers = {}
    if isinstance(exc, RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
    if is_api(request):
        return problem_response(
            request,
            status,
            code,
            exc.message if exc else message,
            details=details,
            errors=exc.errors if isinstance(exc, ValidationFailed) else (),
            headers=headers,
        )
    if _wants_json(request):
        body: dict[str, object] = {
            "code": code,
            "message": exc.message if exc else message,
        }
        if details:
            body["details"] = details
        return web.json_response({"error": body}, status=status, headers=headers)
    response = render(
        request, "error.html", {"status": status, "message": message}, status=status
    )
    response.headers.update(headers)
    return response


def _citizen_message(
    catalog: Catalog, lang: str, status: int, exc: ControlPlaneError | None
) -> str:
    if isinstance(exc, RateLimited):
        return catalog.get(
            "error_rate_limited", lang, minutes=max(1, exc.retry_after // 60)
        )
    if isinstance(exc, CsrfFailed):
        return catalog.get("error_csrf", lang)
    if isinstance(exc, ControlPlaneError) and exc.message in catalog:
        return catalog.get(exc.message, lang)
    key = {
        404: "error_not_found",
        405: "error_method",
        413: "error_too_large",
        403: "error_forbidden",
        500: "error_internal",
    }.get(status, "error_bad_request")
    return catalog.get(key, lang)


def _wants_json(request: web.Request) -> bool:
    if request.path.startswith("/api/"):
        return True
    accept = request.headers.get("Accept", "")
    return "application/json" in accept and "text/html" not in accept
