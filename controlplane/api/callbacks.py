"""The integrator REST API under /api/v1: create, read and cancel callback requests.

Clients authenticate with an API key (``Authorization: Bearer bb_…``) and see
only the requests their key created. Bodies are JSON objects; every wrong input
is a 4xx with ``{"error": {"code", "message", "details"?}}``.
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

from controlplane.api import idempotency
from controlplane.api.openapi import document
from controlplane.base.errors import (
    Conflict,
    NotFound,
    ValidationFailed,
)
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
    parse_reference,
    parse_request,
    store_request,
)
from controlplane.security import api_keys as apikeys
from controlplane.security import audit
from controlplane.security.api_keys import ApiKey
from controlplane.security.ratelimit import LIMITS
from controlplane.storage.database import DB
from controlplane.storage.schema import callback_requests

log = structlog.get_logger()

BASE = "/api/v1"
CANCELLABLE = (State.NEW.value, State.CLAIMED.value)
CANCEL_OUTCOME = "cancelled_by_api"
#: Fields of a new callback request and the JSON type each must have.
CREATE_FIELDS: dict[str, tuple[str, bool]] = {
    # field: (type, may be null)
    "name": ("string", False),
    "phone": ("string", False),
    "email": ("string", True),
    "topic": ("string", False),
    "channel": ("string", False),
    "preferred": ("string", False),
    "slot": ("string", True),
    "language": ("string", False),
    "accessibility": ("array", False),
    "accessibility_note": ("string", True),
    "consent": ("boolean", False),
}


def setup(app: web.Application) -> None:
    """Register this module's routes and background tasks on ``app``."""
    app.router.add_get(f"{BASE}/openapi.json", openapi_json)
    app.router.add_post(f"{BASE}/callbacks", create_callback)
    app.router.add_get(f"{BASE}/callbacks/{{reference}}", get_callback)
    app.router.add_post(f"{BASE}/callbacks/{{reference}}/cancel", cancel_callback)
    app.on_response_prepare.append(_add_www_authenticate)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())


async def create_callback(request: web.Request) -> web.Response:
    key = await _authorize(request, "callbacks:write")
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
    key = await _authorize(request, "callbacks:read")
    row = await _own_request(request, key)
    return web.json_response(representation(row))


async def cancel_callback(request: web.Request) -> web.Response:
    key = await _authorize(request, "callbacks:write")
    if request.body_exists:
        _check_fields(await json_body(request), {})
    reference = _reference(request)
    now = datetime.now(UTC)
    async with request.app[DB].write() as conn:
        row = await _select_own(conn, reference, key)
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
        row = await _select_own(conn, reference, key)
    cancelled = (State.CANCELLED.value, CANCEL_OUTCOME, row["channel"])
    request.app[METRICS].outcomes.labels(*cancelled).inc()
    request.app[QUEUE_EVENTS].publish()
    log.info("api_request_cancelled", callback_id=row["id"], api_key_id=key.id)
    return web.json_response(representation(row))


def representation(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows of a request: no personal data."""

    def when(name: str) -> str | None:
        value = row[name]
        return value.isoformat() if isinstance(value, datetime) else None

    return {
        "id": row["reference"],
        "reference": row["reference"],
        "state": row["state"],
        "channel": row["channel"],
        "topic": row["topic"],
        "language": row["language"],
        "preferred": row["preferred"],
        "slot": when("slot_start"),
        "accessibility": list(row["accessibility"] or []),
        "created_at": when("created_at"),
        "updated_at": when("updated_at"),
        "due_at": when("due_at"),
        "attempts": row["attempts"],
        "first_attempt_at": when("first_attempt_at"),
        "outcome": row["outcome"],
        "closed_at": when("closed_at"),
    }


async def _authorize(request: web.Request, scope: str) -> ApiKey:
    key = await apikeys.authenticate(
        request.app[DB], request.headers.get("Authorization")
    )
    await request.app[LIMITS].api_per_key.hit(str(key.id))
    key.require(scope)
    return key


def _check_fields(
    payload: Mapping[str, Any], spec: Mapping[str, tuple[str, bool]]
) -> dict[str, str]:
    """Type errors by field; unknown fields raise at once."""
    unknown = sorted(set(payload) - set(spec))
    if unknown:
        raise ValidationFailed(
            f"unknown field {unknown[0]!r}",
            details={field: "unknown field" for field in unknown},
        )
    errors: dict[str, str] = {}
    for field, (kind, nullable) in spec.items():
        value = payload.get(field)
        if value is None:
            continue
        if not _has_type(value, kind):
            errors[field] = f"must be {'null or ' if nullable else ''}a {kind}"
        elif kind == "array" and not all(
            isinstance(v, str) and _is_text(v) for v in value
        ):
            errors[field] = "must be an array of strings"
        elif kind == "string" and not _is_text(value):
            errors[field] = "must be valid Unicode text"
    for field, (_kind, nullable) in spec.items():
        if field in payload and payload[field] is None and not nullable:
            errors[field] = "must not be null"
    return errors


def _has_type(value: Any, kind: str) -> bool:
    types = {"string": str, "array": list, "boolean": bool}
    return isinstance(value, types[kind])


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _new_request(
    request: web.Request, payload: Mapping[str, Any], key: ApiKey
) -> NewRequest:
    """Validate with the citizen form's rules; errors in English, by field."""
    errors = _check_fields(payload, CREATE_FIELDS)
    if payload.get("consent") is not True and "consent" not in errors:
        errors["consent"] = (
            "must be true: the citizen agreed to be called back and to the "
            "processing of their data"
        )
    if payload.get("slot") is not None and payload.get("preferred") != "slot":
        errors.setdefault("slot", 'must be null unless preferred is "slot"')
    fields: dict[str, FieldValue] = {
        field: value
        for field, value in payload.items()
        if field not in errors and field != "consent" and value is not None
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
        english = {f: catalog.get(k, "en") for f, k in exc.details.items()}
        errors = {**english, **errors}
        new = None
    if errors or new is None:
        raise ValidationFailed(
            f"invalid field {sorted(errors)[0]!r}; see details", details=errors
        )
    return dataclasses.replace(new, api_key_id=key.id)


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


def _reference(request: web.Request) -> str:
    reference = parse_reference(request.match_info["reference"])
    if reference is None:
        raise NotFound("no such callback request")
    return reference


async def _own_request(request: web.Request, key: ApiKey) -> dict[str, Any]:
    reference = _reference(request)
    async with request.app[DB].read() as conn:
        return await _select_own(conn, reference, key)


async def _select_own(
    conn: AsyncConnection, reference: str, key: ApiKey
) -> dict[str, Any]:
    """The request if this key created it; otherwise :class:`NotFound`."""
    row = (
        await conn.execute(
            sa.select(callback_requests).where(
                callback_requests.c.reference == reference,
                callback_requests.c.api_key_id == key.id,
            )
        )
    ).first()
    if row is None:
        raise NotFound("no such callback request")
    return dict(row._mapping)


async def _add_www_authenticate(
    request: web.Request, response: web.StreamResponse
) -> None:
    if response.status == 401 and request.path.startswith(f"{BASE}/"):
        challenge = 'Bearer realm="beeldbel"'
        if "Authorization" in request.headers:
            challenge += ', error="invalid_token"'
        response.headers.setdefault("WWW-Authenticate", challenge)
