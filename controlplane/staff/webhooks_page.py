"""The admins' webhooks page of one API key: its endpoints (URL, event types,
secret rotation, deliveries pending and dead), adding one (its signing secret
shown once), rotating the secret, removing one after a confirmation, and the
dead-lettered deliveries with their replay.

The endpoints themselves are :mod:`controlplane.webhooks`, shared with the
``beeldbel admin webhook-*`` commands; each of its operations audits itself in
its own transaction (endpoint id and codes, never the secret or the URL).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from yarl import URL

from controlplane.base.errors import NotFound
from controlplane.base.settings import CONFIG
from controlplane.security.api_keys import list_api_keys
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.staff.api_keys_page import render_uncached
from controlplane.staff.auth import StaffUser, require_staff
from controlplane.staff.console import small_int
from controlplane.staff.labels import Labels
from controlplane.storage.database import DB
from controlplane.webhooks import (
    EVENT_TYPES,
    Endpoint,
    EndpointInvalid,
    add_endpoint,
    dead_letters,
    list_endpoints,
    remove_endpoint,
    replay,
    rotate_secret,
)

log = structlog.get_logger()

PATH = "/staff/admin/api-keys/{key_id:[0-9]+}/webhooks"
_ENDPOINT = PATH + "/{endpoint_id:[0-9]+}"
#: The longest URL the form takes (as :mod:`controlplane.webhooks` does).
URL_MAX = 2000


def setup(app: web.Application) -> None:
    """Register the page and its four actions."""
    app.router.add_get(PATH, webhooks_page)
    app.router.add_post(PATH, add)
    app.router.add_post(_ENDPOINT + "/rotate", rotate)
    app.router.add_post(_ENDPOINT + "/remove", remove)
    app.router.add_post(_ENDPOINT + "/replay", replay_dead)


def page_path(key_id: int) -> str:
    return f"/staff/admin/api-keys/{key_id}/webhooks"


async def _key(request: web.Request) -> dict[str, Any]:
    """The API key the path names, revoked or not; 404 when there is none."""
    key_id = small_int(request.match_info["key_id"])
    for key in await list_api_keys(request.app[DB]):
        if key["id"] == key_id:
            return key
    raise NotFound("admin_keys_error_unknown")


async def _endpoint(request: web.Request, key_id: int) -> Endpoint:
    """The endpoint the path names, if it is this key's; 404 otherwise."""
    endpoint_id = small_int(request.match_info["endpoint_id"])
    for endpoint in await list_endpoints(request.app[DB]):
        if endpoint.id == endpoint_id and endpoint.api_key_id == key_id:
            return endpoint
    raise NotFound("admin_webhooks_error_unknown")


async def webhooks_page(request: web.Request) -> web.Response:
    await require_staff(request, "admin")
    key = await _key(request)
    return await _page(request, key, done=request.query.get("done", ""))


async def _page(
    request: web.Request,
    key: dict[str, Any],
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    **extra: Any,
) -> web.Response:
    """The key's endpoints and the add form; ``secret`` (once) a new one."""
    labels, db = Labels(request), request.app[DB]
    dead = await dead_letters(db)
    endpoints = [
        _listed(e, labels, [d for d in dead if d.endpoint_id == e.id])
        for e in await list_endpoints(db)
        if e.api_key_id == key["id"]
    ]
    context = {
        "key": key,
        "endpoints": endpoints,
        "event_types": EVENT_TYPES,
        "url_max": URL_MAX,
        "errors": errors or {},
        "values": values or {"url": "", "events": EVENT_TYPES},
        "secret": None,
        "removing": None,
        "rotated_hours": None,
        "secret_for": None,
        "done": "",
        **extra,
    }
    return render_uncached(request, "admin/webhooks.html", context, status)


def _listed(endpoint: Endpoint, labels: Labels, dead: list[Any]) -> dict[str, Any]:
    until = endpoint.previous_until
    if until is not None and until.tzinfo is None:
        until = until.replace(tzinfo=UTC)
    if until is None:
        rotation = "never"
    else:
        rotation = "overlap" if until > datetime.now(UTC) else "done"
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "event_types": endpoint.event_types,
        "created": labels.local(endpoint.created_at),
        "rotation": rotation,
        "previous_until": labels.local(until) if until else "",
        "pending": endpoint.pending,
        "dead": [
            {
                "message_id": d.message_id,
                "event_type": d.event_type,
                "attempts": d.attempts,
                "last_error": d.last_error or "",
                "at": labels.local(d.created_at),
            }
            for d in dead
        ],
    }


async def add(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    key = await _key(request)
    form = await request.post()
    url = str(form.get("url", "")).strip()
    events = tuple(str(e) for e in form.getall("event", []))
    values = {"url": url, "events": events}
    allow_private = request.app[CONFIG].webhooks.allow_private_addresses
    errors = _form_errors(key, url, events, allow_private=allow_private)
    if errors:
        return await _page(request, key, status=422, errors=errors, values=values)
    try:
        endpoint, secret = await add_endpoint(
            request.app[DB],
            request.app[SECRET_KEY],
            key["prefix"],
            url,
            events,
            allow_private=allow_private,
            username=actor.username,
        )
    except EndpointInvalid:
        # what is left after the form's own checks: the address is not public
        errors = {"url": "admin_webhooks_error_url_refused"}
        return await _page(request, key, status=422, errors=errors, values=values)
    _logged("webhook_endpoint_added", actor, key, endpoint.id)
    return await _page(request, key, secret=secret, secret_for=endpoint.id)


def _form_errors(
    key: dict[str, Any], url: str, events: tuple[str, ...], *, allow_private: bool
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if key["revoked_at"] is not None:
        errors["url"] = "admin_webhooks_error_key_revoked"
    elif problem := _url_error(url, allow_private=allow_private):
        errors["url"] = problem
    if not events:
        errors["event"] = "admin_webhooks_error_event_missing"
    elif any(event not in EVENT_TYPES for event in events):
        errors["event"] = "admin_webhooks_error_event_unknown"
    return errors


def _url_error(url: str, *, allow_private: bool) -> str | None:
    """What is wrong with the URL's form, each with its own message; whether its
    address is public :func:`~controlplane.webhooks.add_endpoint` decides."""
    if not url:
        return "admin_webhooks_error_url_missing"
    if len(url) > URL_MAX:
        return "admin_webhooks_error_url_long"
    schemes = ("https", "http") if allow_private else ("https",)
    try:
        parsed = URL(url)
    except ValueError:
        return "admin_webhooks_error_url_https"
    if parsed.scheme not in schemes or not parsed.host or not url.isprintable():
        return "admin_webhooks_error_url_https"
    if parsed.user is not None or parsed.password is not None:
        return "admin_webhooks_error_url_credentials"
    return None


async def rotate(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    key = await _key(request)
    endpoint = await _endpoint(request, key["id"])
    hours = request.app[CONFIG].webhooks.secret_overlap_hours
    secret = await rotate_secret(
        request.app[DB],
        request.app[SECRET_KEY],
        endpoint.id,
        hours,
        username=actor.username,
    )
    _logged("webhook_secret_rotated", actor, key, endpoint.id)
    return await _page(
        request, key, secret=secret, secret_for=endpoint.id, rotated_hours=hours
    )


async def remove(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    key = await _key(request)
    endpoint = await _endpoint(request, key["id"])
    form = await request.post()
    if form.get("confirm") != "yes":
        errors = {"confirm": "admin_webhooks_error_confirm"}
        return await _page(
            request, key, status=422, errors=errors, removing=endpoint.id
        )
    await remove_endpoint(request.app[DB], endpoint.id, username=actor.username)
    _logged("webhook_endpoint_removed", actor, key, endpoint.id)
    raise web.HTTPSeeOther(f"{page_path(key['id'])}?done=removed")


async def replay_dead(request: web.Request) -> web.Response:
    """Every dead letter of the endpoint pending again, or the one ``message``."""
    actor = await require_staff(request, "admin")
    key = await _key(request)
    endpoint = await _endpoint(request, key["id"])
    form = await request.post()
    message = str(form.get("message", "")) or None
    count = await replay(request.app[DB], endpoint.id, message, username=actor.username)
    _logged("webhook_events_replayed", actor, key, endpoint.id, count=count)
    raise web.HTTPSeeOther(f"{page_path(key['id'])}?done=replayed")


def _logged(
    event: str, actor: StaffUser, key: dict[str, Any], endpoint_id: int, **more: Any
) -> None:
    log.info(event, user_id=actor.id, key_id=key["id"], endpoint_id=endpoint_id, **more)
