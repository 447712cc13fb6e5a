"""Integrator API: join links and media tokens for a video request, so another
front end can embed the call.

``POST /api/v1/callbacks/{reference}/tokens`` ``{"role": "agent" | "citizen" |
"interpreter", "kind": "link" | "media"}`` with an API key that has the
``calls:write`` scope and created the request. The request must be open and a
video request; its running call is used, or a room is made for it. A ``link`` is
a single-use join link (citizen or interpreter); a ``media`` grant is a
short-lived single-use token for the media node with the WebSocket URL and ICE
servers. Tokens and links are never logged.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from controlplane.api.access import BASE, authorize, reference_of, select_own
from controlplane.api.models import CallToken, CallTokenRequest
from controlplane.api.parsing import failure, parse_body
from controlplane.base.errors import Conflict, FieldError
from controlplane.base.json_body import json_body
from controlplane.calls import active_call, media_grant, new_link, open_room
from controlplane.requests import OPEN_STATES
from controlplane.security import audit
from controlplane.storage.database import DB

log = structlog.get_logger()


def setup(app: web.Application) -> None:
    app.router.add_post(f"{BASE}/callbacks/{{reference}}/tokens", issue_token)


def _parse(payload: dict[str, Any]) -> tuple[str, str]:
    asked = parse_body(CallTokenRequest, payload)
    if asked.role == "agent" and asked.kind == "link":
        detail = "an agent gets a media token, not a join link"
        raise failure([FieldError("body", ("kind",), "not_allowed", detail)])
    return asked.role, asked.kind


async def issue_token(request: web.Request) -> web.Response:
    key = await authorize(request, "calls:write")
    role, kind = _parse(await json_body(request))
    reference = reference_of(request)
    app = request.app
    async with app[DB].read() as conn:
        row = await select_own(conn, reference, key)
    if row["state"] not in {s.value for s in OPEN_STATES}:
        raise Conflict(f"the request is {row['state']}; a call needs an open request")
    if row["channel"] != "video":
        raise Conflict("the request is a phone request; switch it to video first")
    username = f"api:{key.prefix}"
    call = await active_call(app, row["id"])
    if call is None:
        call = await open_room(app, row["id"], user_id=None, username=username)
    if kind == "link":
        link, expires = await new_link(app, call, role)
        body: dict[str, Any] = {
            "kind": kind,
            "role": role,
            "room_id": call.room_id,
            "link": link,
            "expires_at": expires.isoformat(),
        }
    else:
        grant = await media_grant(app, call, role, f"{role}-api{key.id}")
        body = {"kind": kind, **grant}
    async with app[DB].write() as conn:
        await audit.record(
            conn,
            "call_token_issued",
            username=username,
            request_id=row["id"],
            api_key_id=key.id,
            role=role,
            kind=kind,
        )
    log.info("api_call_token_issued", api_key_id=key.id, role=role, kind=kind)
    shown = CallToken.model_validate(body).model_dump(mode="json", exclude_none=True)
    return web.json_response(shown, headers={"Cache-Control": "no-store"})
