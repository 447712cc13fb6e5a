"""Errors the call pages' scripts report (``POST /gesprek/fout``), so that a
failure the browser would swallow (a progress report that did not arrive, a
camera that would not start) leaves a trace: a log line and a metric.

Only codes from the fixed lists below are taken, so the log and the metric's
labels stay bounded and free of personal data: no text, no URL, no user agent
beyond a browser family. Any page with a CSRF token may report (the join page
before the link is exchanged too); each address is rate limited.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from aiohttp import web

from controlplane.base.client import client_ip
from controlplane.base.errors import BadRequest
from controlplane.base.i18n import CATALOG, request_language
from controlplane.base.json_body import json_body
from controlplane.base.metrics import METRICS
from controlplane.security.ratelimit import LIMITS

log = structlog.get_logger()

#: The pages whose scripts report (the metric's ``page`` label).
PAGES = ("join", "device_check", "call", "staff_call", "queue", "request")

#: Each kind of failure (the metric's ``kind`` label) and its codes (logged only).
CODES: dict[str, tuple[str, ...]] = {
    # a POST to the control plane that did not arrive
    "report": ("progress_failed", "quality_failed", "link_open_failed"),
    # camera, microphone, speaker, playing media, Web Audio
    "media": (
        "permission_denied",
        "device_not_found",
        "device_in_use",
        "media_failed",
        "devices_unlisted",
        "speaker_select_failed",
        "play_failed",
        "audio_failed",
    ),
    # token endpoint, media server, ICE and negotiation, status polls, stats
    "connection": (
        "token_failed",
        "websocket_failed",
        "relay_failed",
        "negotiation_failed",
        "status_failed",
        "stats_failed",
        "video_sending_failed",
    ),
    # something the person asked for and that did not happen
    "action": (
        "copy_failed",
        "interpreter_failed",
        "lobby_message_failed",
        "end_failed",
        "camera_switch_failed",
        "action_failed",
    ),
    # a message or reply that could not be read
    "message": ("bad_json", "bad_reply"),
    # sessionStorage unavailable or full
    "storage": ("storage_failed",),
    # anything else that was thrown
    "script": ("unexpected",),
}
KINDS = tuple(CODES)

_FAMILIES = (
    ("edge", re.compile(r"\bEdg(?:e|A|iOS)?/")),
    ("firefox", re.compile(r"\b(?:Firefox|FxiOS)/")),
    ("chrome", re.compile(r"\b(?:Chrome|Chromium|CriOS)/")),
    ("safari", re.compile(r"\bSafari/")),
)


def setup(app: web.Application) -> None:
    app.router.add_post("/gesprek/fout", report_client_error)


def browser_family(user_agent: str) -> str:
    """``edge``, ``firefox``, ``chrome``, ``safari`` or ``other``: all of the
    user agent string that is logged."""
    for family, pattern in _FAMILIES:
        if pattern.search(user_agent):
            return family
    return "other"


async def report_client_error(request: web.Request) -> web.Response:
    """``{"page", "kind", "code"}`` from the fixed lists → 204, counted and logged."""
    await request.app[LIMITS].client_errors_per_ip.hit(client_ip(request))
    body = await json_body(request)
    page, kind, code = _checked(request, body)
    request.app[METRICS].client_errors.labels(page, kind).inc()
    log.warning(
        "client_error_reported",
        page=page,
        kind=kind,
        code=code,
        browser=browser_family(request.headers.get("User-Agent", "")),
    )
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


def _checked(request: web.Request, body: dict[str, Any]) -> tuple[str, str, str]:
    """The three codes, or a 400 naming each one that is not on its list."""
    page, kind, code = body.get("page"), body.get("kind"), body.get("code")
    errors: dict[str, str] = {}
    if page not in PAGES:
        errors["page"] = "client_errors_page"
    if kind not in KINDS:
        errors["kind"] = "client_errors_kind"
    if not isinstance(kind, str) or code not in CODES.get(kind, ()):
        errors["code"] = "client_errors_code"
    if errors:
        t = request.app[CATALOG]
        lang = request_language(request)
        raise BadRequest(
            t.get("client_errors_invalid", lang),
            details={field: t.get(key, lang) for field, key in errors.items()},
        )
    return str(page), str(kind), str(code)
