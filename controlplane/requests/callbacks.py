"""Callback requests: what a new one holds, and storing it exactly once."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.requests.reference import new_reference
from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests
from controlplane.webhooks import callback_event

log = structlog.get_logger()


class State(StrEnum):
    NEW = "new"
    CLAIMED = "claimed"
    CALLING = "calling"
    COMPLETED = "completed"
    NO_ANSWER = "no_answer"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


OPEN_STATES = (State.NEW, State.CLAIMED, State.CALLING)
CLOSED_STATES = (State.COMPLETED, State.NO_ANSWER, State.CANCELLED, State.EXPIRED)

CHANNELS = ("video", "phone")
SOURCES = ("web", "phone", "api")
ACCESSIBILITY_NEEDS = (
    "text_chat",
    "sign_language",
    "extra_time",
    "simple_language",
    "screen_reader",
)


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A validated callback request, as the form, staff or the API hand it in."""

    name: str
    phone: str  # E.164
    channel: str
    topic: str
    language: str
    preferred: str  # "asap" or "slot"
    source: str
    email: str | None = None
    slot_start: datetime | None = None
    accessibility: tuple[str, ...] = ()
    accessibility_note: str | None = None
    api_key_id: int | None = None

    def __post_init__(self) -> None:
        if self.channel not in CHANNELS:
            raise ValueError(f"channel {self.channel!r} must be one of {CHANNELS}")
        if self.source not in SOURCES:
            raise ValueError(f"source {self.source!r} must be one of {SOURCES}")
        if self.preferred not in ("asap", "slot"):
            raise ValueError(f"preferred {self.preferred!r} must be asap or slot")
        if (self.preferred == "slot") != (self.slot_start is not None):
            raise ValueError("slot_start is needed exactly when preferred is slot")
        unknown = set(self.accessibility) - set(ACCESSIBILITY_NEEDS)
        if unknown:
            raise ValueError(f"unknown accessibility needs {sorted(unknown)}")


@dataclass(frozen=True, slots=True)
class Created:
    id: int
    reference: str
    #: False when the same submission was stored before (double click, retry).
    created: bool
    row: dict[str, Any] = field(default_factory=dict)


#: Transactions tried when one loses a race for a submission key or reference.
STORE_ATTEMPTS = 5


async def create_request(
    db: Database, new: NewRequest, submission_key: str | None
) -> Created:
    """Store ``new`` once per ``submission_key`` and commit before returning.

    A second call with the same key returns the first request unchanged.
    """
    for _ in range(STORE_ATTEMPTS):
        try:
            async with db.write() as conn:
                return await store_request(conn, new, submission_key)
        except IntegrityError:
            # a racing duplicate submission, or (rarely) a reference collision:
            # the next transaction finds the first, or draws another reference
            continue
    raise RuntimeError("could not find a free reference")


async def store_request(
    conn: AsyncConnection, new: NewRequest, submission_key: str | None
) -> Created:
    """Insert ``new`` in the caller's transaction, or find the request stored
    before with ``submission_key``. Raises ``IntegrityError`` when a concurrent
    transaction stored that key first or the reference is taken: roll back and
    try again (see :data:`STORE_ATTEMPTS`)."""
    if submission_key is not None:
        found = await conn.execute(
            sa.select(callback_requests).where(
                callback_requests.c.submission_key == submission_key
            )
        )
        existing = found.first()
        if existing is not None:
            row = dict(existing._mapping)
            return Created(row["id"], row["reference"], False, row)
    reference = new_reference()
    values = _row_values(new, submission_key, datetime.now(UTC))
    result = await conn.execute(
        sa.insert(callback_requests)
        .values(reference=reference, **values)
        .returning(callback_requests)
    )
    row = dict(result.one()._mapping)
    await callback_event(conn, row["id"], "callback.created")
    return Created(row["id"], reference, True, row)


def _row_values(
    new: NewRequest, submission_key: str | None, now: datetime
) -> dict[str, Any]:
    """The columns of a new ``callback_requests`` row, all but its reference."""
    return {
        "state": State.NEW.value,
        "channel": new.channel,
        "topic": new.topic,
        "language": new.language,
        "source": new.source,
        "name": new.name,
        "phone": new.phone,
        "email": new.email,
        "accessibility": list(new.accessibility),
        "accessibility_note": new.accessibility_note,
        "preferred": new.preferred,
        "slot_start": new.slot_start,
        "due_at": new.slot_start or now,
        "created_at": now,
        "updated_at": now,
        "attempts": 0,
        "submission_key": submission_key,
        "api_key_id": new.api_key_id,
    }


async def find_by_submission(db: Database, key: str) -> dict[str, Any] | None:
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.select(callback_requests).where(
                    callback_requests.c.submission_key == key
                )
            )
        ).first()
    return dict(row._mapping) if row is not None else None


async def find_by_reference(db: Database, reference: str) -> dict[str, Any] | None:
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.select(callback_requests).where(
                    callback_requests.c.reference == reference
                )
            )
        ).first()
    return dict(row._mapping) if row is not None else None
