"""The webhook events and their outbox rows, written in the caller's transaction.

An event is written if and only if the change it tells of commits: the rows go
into ``webhook_outbox`` on the change's own connection, one per endpoint of the
API key that created the request and wants that type. Requests from the web form
or the phone line have no API key, so no endpoint gets their events. Payloads
carry the request's reference, codes and times, never personal data.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.storage.schema import (
    callback_requests,
    webhook_endpoints,
    webhook_outbox,
)

CALLBACK_EVENTS = (
    "callback.created",
    "callback.claimed",
    "callback.attempted",
    "callback.completed",
    "callback.cancelled",
    "callback.expired",
)
CALL_EVENTS = (
    "call.started",
    "call.citizen_joined",
    "call.ended",
    "call.switched_to_phone",
)
EVENT_TYPES = CALLBACK_EVENTS + CALL_EVENTS
#: The request's columns an event tells (codes and times; no personal data).
_REQUEST_FIELDS = ("state", "channel", "topic", "language", "source", "attempts")
_REQUEST_TIMES = ("created_at", "due_at", "closed_at")
#: The event a request's closing state is told by: a request closed after its
#: last unanswered attempt (no_answer) counts as completed, its state says so.
CLOSED_EVENTS = {
    "completed": "callback.completed",
    "no_answer": "callback.completed",
    "cancelled": "callback.cancelled",
    "expired": "callback.expired",
}
_req = callback_requests


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _request_data(row: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"reference": row.reference}
    data.update({name: getattr(row, name) for name in _REQUEST_FIELDS})
    data["outcome"] = row.outcome
    data.update({name: _iso(getattr(row, name)) for name in _REQUEST_TIMES})
    return data


async def callback_event(
    conn: AsyncConnection, request_id: int, event_type: str, **extra: Any
) -> int:
    """Queue ``event_type`` about request ``request_id`` for its API key's
    endpoints, in the caller's transaction; ``extra`` (codes only) joins the
    request's fields. Returns how many endpoints get it."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    row = (await conn.execute(sa.select(_req).where(_req.c.id == request_id))).first()
    if row is None or row.api_key_id is None:
        return 0
    endpoints = await _subscribed(conn, int(row.api_key_id), event_type)
    if not endpoints:
        return 0
    now = datetime.now(UTC)
    message_id = f"msg_{uuid.uuid4().hex}"
    body = {
        "type": event_type,
        "timestamp": now.isoformat(),
        "data": {**_request_data(row), **extra},
    }
    payload = json.dumps(body, separators=(",", ":"), sort_keys=True)
    await conn.execute(
        sa.insert(webhook_outbox),
        [
            {
                "message_id": message_id,
                "endpoint_id": endpoint_id,
                "request_id": request_id,
                "event_type": event_type,
                "payload": payload,
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for endpoint_id in endpoints
        ],
    )
    return len(endpoints)


async def _subscribed(
    conn: AsyncConnection, api_key_id: int, event_type: str
) -> list[int]:
    """The endpoints of ``api_key_id`` that want ``event_type``, by id."""
    rows = await conn.execute(
        sa.select(webhook_endpoints.c.id, webhook_endpoints.c.event_types)
        .where(webhook_endpoints.c.api_key_id == api_key_id)
        .order_by(webhook_endpoints.c.id)
    )
    return [int(rid) for rid, types in rows if event_type in types]


async def request_closed(conn: AsyncConnection, request_id: int, state: str) -> int:
    """Queue the event of a request just closed in ``state`` (see
    :data:`CLOSED_EVENTS`), in the caller's transaction."""
    return await callback_event(conn, request_id, CLOSED_EVENTS[state])
