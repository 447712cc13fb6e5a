"""The admins' API keys page: create a key (its secret shown once), list the keys
with their scopes and last use, revoke one after a confirmation.

The keys themselves are :mod:`controlplane.security.api_keys`, shared with the
``beeldbel admin apikey-*`` commands. Creating and revoking are audited in the
same transaction with the key's id and name, never its secret.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.errors import NotFound
from controlplane.base.rendering import render
from controlplane.security import audit
from controlplane.security.api_keys import (
    NAME_MAX,
    SCOPES,
    create_api_key_with_id,
    list_api_keys,
    revoke_api_key_by_id,
)
from controlplane.staff.auth import StaffUser, require_staff
from controlplane.staff.console import small_int
from controlplane.staff.labels import Labels
from controlplane.storage.database import DB

log = structlog.get_logger()

PATH = "/staff/admin/api-keys"


def setup(app: web.Application) -> None:
    """Register the API keys page and its two actions."""
    app.router.add_get(PATH, keys_page)
    app.router.add_post(PATH, create_key)
    app.router.add_post(PATH + "/{key_id:[0-9]+}/revoke", revoke_key)


async def keys_page(request: web.Request) -> web.Response:
    await require_staff(request, "admin")
    return await _page(request, done=request.query.get("done", ""))


async def _page(
    request: web.Request,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    **extra: Any,
) -> web.Response:
    """The list and the create form; ``secret`` (once) a new key in full."""
    labels = Labels(request)
    keys = [_listed(key, labels) for key in await list_api_keys(request.app[DB])]
    context = {
        "keys": keys,
        "scopes": SCOPES,
        "name_max": NAME_MAX,
        "errors": errors or {},
        "values": values or {"scopes": []},
        "secret": None,
        "revoking": None,
        "done": "",
        **extra,
    }
    return render_uncached(request, "admin/api_keys.html", context, status)


def render_uncached(
    request: web.Request, template: str, context: dict[str, Any], status: int
) -> web.Response:
    """A page that may hold a secret shown once: never from a cache or the back
    button's store (also the webhooks page's)."""
    response = render(request, template, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _listed(key: dict[str, Any], labels: Labels) -> dict[str, Any]:
    last_used = key["last_used_at"]
    return {
        **key,
        "state": "active" if key["revoked_at"] is None else "revoked",
        "created": labels.local(key["created_at"]),
        "last_used": labels.local(last_used) if last_used else "",
        "revoked": labels.local(key["revoked_at"]) if key["revoked_at"] else "",
    }


async def create_key(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    form = await request.post()
    name = str(form.get("name", "")).strip()
    scopes = tuple(str(s) for s in form.getall("scope", []))
    errors = _key_errors(name, scopes)
    values = {"name": name, "scopes": scopes}
    if errors:
        return await _page(request, status=422, errors=errors, values=values)

    async def record(conn: AsyncConnection, key_id: int) -> None:
        await _audit(conn, actor, "api_key_created", key_id, name, scopes=list(scopes))

    secret, key_id = await create_api_key_with_id(
        request.app[DB], name, scopes, also=record
    )
    log.info("api_key_created", user_id=actor.id, key_id=key_id)
    return await _page(request, secret=secret, created_name=name)


def _key_errors(name: str, scopes: tuple[str, ...]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not name:
        errors["name"] = "admin_keys_error_name_missing"
    elif len(name) > NAME_MAX:
        errors["name"] = "admin_keys_error_name_long"
    elif not name.isprintable():
        errors["name"] = "admin_keys_error_name_invalid"
    if not scopes or any(scope not in SCOPES for scope in scopes):
        errors["scope"] = "admin_keys_error_scope"
    return errors


async def revoke_key(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    key_id = small_int(request.match_info["key_id"])
    known = {key["id"]: key for key in await list_api_keys(request.app[DB])}
    if key_id is None or key_id not in known:
        raise NotFound("admin_keys_error_unknown")
    form = await request.post()
    if form.get("confirm") != "yes":
        errors = {"confirm": "admin_keys_error_confirm"}
        return await _page(request, status=422, errors=errors, revoking=key_id)
    name = str(known[key_id]["name"])

    async def record(conn: AsyncConnection, key_id: int) -> None:
        await _audit(conn, actor, "api_key_revoked", key_id, name)

    if await revoke_api_key_by_id(request.app[DB], key_id, also=record) is None:
        raise NotFound("admin_keys_error_unknown")
    log.info("api_key_revoked", user_id=actor.id, key_id=key_id)
    raise web.HTTPSeeOther(f"{PATH}?done=revoked")


async def _audit(
    conn: AsyncConnection,
    actor: StaffUser,
    action: str,
    key_id: int,
    name: str,
    **details: Any,
) -> None:
    await audit.record(
        conn,
        action,
        user_id=actor.id,
        username=actor.username,
        key_id=key_id,
        name=name,
        **details,
    )
