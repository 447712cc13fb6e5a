"""The integrator REST API under /api/v1: create, read and cancel callback requests.

Clients authenticate with an API key (``Authorization: Bearer bb_…``) and see
only the requests their key created. Bodies are JSON objects checked by the
models in :mod:`controlplane.api.models`; every wrong input is a 4xx problem
(:mod:`controlplane.api.problems`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane import webhooks
from controlplane.api import idempotency
from controlplane.api.access import (
    BASE,
    add_www_authenticate,
    authorize,
    own_request,
    reference_of,
    select_own,
)
from controlplane.api.models import Callback as CallbackOut
from controlplane.api.models import CallbackCreate, CancelBody
from controlplane.api.parsing import check, failure, parse_body
from controlplane.base.errors import Conflict, FieldError, ValidationFailed
from controlplane.base.i18n import CATALOG
from controlplane.base.json_body import json_body
from controlplane.base.metrics import METRICS
from controlplane.requests import (
    DESK,
    QUEUE_EVENTS,
    Created,
    FieldValue,
    NewRequest,
    State,
    announce_new_request,
    create_request,
    parse_request,
    store_request,
)
from controlplane.security import audit
from controlplane.security.api_keys import ApiKey
from controlplane.storage.database import DB
from controlplane.storage.schema import callback_requests

log = structlog.get_logger()

CANCELLABLE = (State.NEW.value, State.CLAIMED.value)
CANCEL_OUTCOME = "cancelled_by_api"
CONSENT = (
    "must be true: the citizen agreed to be called back and to the processing "
    "of their data"
)


def setup(app: web.Application) -> None:
    """Register this module's routes and background tasks on ``app``."""
    app.router.add_post(f"{BASE}/callbacks", create_callback)
    app.router.add_get(f"{BASE}/callbacks/{{reference}}", get_callback)
    app.router.add_post(f"{BASE}/callbacks/{{reference}}/cancel", cancel_callback)
    app.on_response_prepare.append(add_www_authenticate)


async def create_callback(request: web.Request) -> web.Response:
    key = await authorize(request, "callbacks:write")
    idem = idempotency.parse_key(request.headers.get(idempotency.HEADER))
    payload = await json_body(request)
    db = request.app[DB]
    print_ = idempotency.fingerprint("POST", f"{BASE}/callbacks", payload)
    try:
        new = _new_request(request, payload, key)
    except ValidationFailed:
        # a retry of a request that was valid then (a slot now past) replays
        if idem is not None:
            stored = await idempotency.replay(db, key.id, idem, print_)
            if stored is not None:
                return _replayed(stored)
        raise
    if idem is None:
        created = await create_request(db, new, None)
        body = _created_body(created)
    else:
        submission = idempotency.submission_key(key.id, idem)
        respond = _creator(new, submission)
        stored, result = await idempotency.once(db, key.id, idem, print_, respond)
        if result is None:
            return _replayed(stored)
        created, body = result, stored.body
    _count_created(request, created, new, key)
    return web.Response(
        status=201,
        text=body,
        content_type="application/json",
        headers={"Location": _location(created.reference)},
    )


def _creator(
    new: NewRequest, submission: str
) -> Callable[[AsyncConnection], Awaitable[tuple[idempotency.StoredResponse, Created]]]:
    """Stores ``new`` in the idempotency key's transaction; its 201 is kept."""

    async def create(
        conn: AsyncConnection,
    ) -> tuple[idempotency.StoredResponse, Created]:
        created = await store_request(conn, new, submission)
        return idempotency.StoredResponse(201, _created_body(created)), created

    return create


def _created_body(created: Created) -> str:
    return json.dumps(representation(created.row))


def _count_created(
    request: web.Request, created: Created, new: NewRequest, key: ApiKey
) -> None:
    announce_new_request(request.app, new, created)
    log.info(
        "api_request_created",
        callback_id=created.id,
        api_key_id=key.id,
        channel=new.channel,
        topic=new.topic,
        duplicate=not created.created,
    )


async def get_callback(request: web.Request) -> web.Response:
    key = await authorize(request, "callbacks:read")
    row = await own_request(request, key)
    return web.json_response(representation(row))


async def cancel_callback(request: web.Request) -> web.Response:
    key = await authorize(request, "callbacks:write")
    if request.body_exists:
        parse_body(CancelBody, await json_body(request))
    reference = reference_of(request)
    now = datetime.now(UTC)
    async with request.app[DB].write() as conn:
        row = await select_own(conn, reference, key)
        if row["state"] not in CANCELLABLE:
            raise Conflict(
                f"the request is {row['state']} and can no longer be cancelled"
            )
        await conn.execute(
            sa.update(callback_requests)
            .where(callback_requests.c.id == row["id"])
            .values(
                state=State.CANCELLED.value,
                outcome=CANCEL_OUTCOME,
                closed_at=now,
                updated_at=now,
            )
        )
        await audit.record(
            conn,
            "request_cancelled",
            username=f"api:{key.prefix}",
            request_id=row["id"],
            api_key_id=key.id,
            from_state=row["state"],
        )
        # the key's own webhook endpoints hear it too, in the same transaction
        await webhooks.request_closed(conn, row["id"], State.CANCELLED.value)
        row = await select_own(conn, reference, key)
    cancelled = (State.CANCELLED.value, CANCEL_OUTCOME, row["channel"])
    request.app[METRICS].outcomes.labels(*cancelled).inc()
    request.app[QUEUE_EVENTS].publish()
    log.info("api_request_cancelled", callback_id=row["id"], api_key_id=key.id)
    return web.json_response(representation(row))


def representation(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows of a request: no personal data."""
    return CallbackOut.from_row(row).model_dump(mode="json")


def _new_request(
    request: web.Request, payload: Mapping[str, Any], key: ApiKey
) -> NewRequest:
    """Check the shape with the model, then the citizen form's rules, in English;
    :class:`ValidationFailed` names every wrong field."""
    _model, errors = check(CallbackCreate, payload, "body")
    errors = [_explained(error) for error in errors]
    wrong = {error.path[0] for error in errors}
    slot_given = payload.get("slot") is not None and "slot" not in wrong
    if slot_given and payload.get("preferred") != "slot":
        errors.append(_invalid("slot", 'must be null unless preferred is "slot"'))
    fields: dict[str, FieldValue] = {
        field: value
        for field, value in payload.items()
        if field not in wrong and field != "consent" and value is not None
    }
    catalog = request.app[CATALOG]
    try:
        new = parse_request(
            fields,
            request.app[DESK].current,
            source="api",
            now=datetime.now(UTC),
            require_consent=False,
        )
    except ValidationFailed as exc:
        errors += [
            _invalid(field, catalog.get(message, "en"))
            for field, message in exc.details.items()
            if field not in wrong
        ]
        new = None
    if errors or new is None:
        raise failure(sorted(errors, key=lambda error: str(error.path[0])))
    return dataclasses.replace(new, api_key_id=key.id)


def _explained(error: FieldError) -> FieldError:
    if error.path == ("consent",):
        return dataclasses.replace(error, detail=CONSENT)
    return error


def _invalid(field: str, detail: str) -> FieldError:
    return FieldError("body", (field,), "invalid", detail)


def _replayed(stored: idempotency.StoredResponse) -> web.Response:
    headers = {"Idempotent-Replayed": "true"}
    body = json.loads(stored.body)
    if stored.status == 201:
        headers["Location"] = _location(body["reference"])
    return web.Response(
        status=stored.status,
        text=stored.body,
        content_type="application/json",
        headers=headers,
    )


def _location(reference: str) -> str:
    return f"{BASE}/callbacks/{reference}"
