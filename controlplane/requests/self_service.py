"""What a citizen may do to their own request from its status page: cancel it,
move it to another slot, and tell the employee their video link failed.

Each change is one conditional ``UPDATE`` (the request must still be in a state
that allows it, so a citizen racing an employee cannot undo a claim or a call),
audited in the same transaction as the citizen (no user, codes only).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import DeskConfig
from controlplane.base.errors import Conflict, ValidationFailed
from controlplane.base.metrics import Metrics
from controlplane.requests.callbacks import State
from controlplane.requests.slots import is_bookable
from controlplane.security import audit
from controlplane.storage.database import Database
from controlplane.storage.schema import audit_log, callback_requests, request_notes
from controlplane.webhooks import request_closed

log = structlog.get_logger()

#: Who acts, in the audit log: the holder of the status link.
CITIZEN = "citizen"
CANCEL_OUTCOME = "cancelled_by_citizen"
CANCELLABLE = (State.NEW, State.CLAIMED)
#: Only a request nobody has picked up yet moves to another slot.
MOVABLE = (State.NEW,)
#: A video request with a call started or about to start may need a new link.
LINK_HELP_STATES = (State.CLAIMED, State.CALLING)
#: A second ask within this time adds no second note.
LINK_HELP_QUIET = timedelta(minutes=10)
#: The note the employee finds with the request (the desk works in Dutch).
LINK_HELP_NOTE = (
    "De burger meldt via de statuspagina dat de videolink niet werkt of niet is "
    "aangekomen. Stuur een nieuwe link of bel de burger."
)
_req = callback_requests


@dataclass(frozen=True, slots=True)
class NewTime:
    """Where the citizen wants the request: as soon as possible, or a slot."""

    preferred: str
    slot_start: datetime | None


def parse_new_time(
    text: str, current: dict[str, Any], desk: DeskConfig, now: datetime
) -> NewTime:
    """``"asap"`` or an ISO slot start that may still be picked and differs from
    the request's own; otherwise :class:`ValidationFailed` on ``slot``."""
    if text == "asap":
        wanted = NewTime("asap", None)
    else:
        wanted = NewTime("slot", _slot(text, desk, now))
    if (wanted.preferred, wanted.slot_start) == (
        current["preferred"],
        current["slot_start"],
    ):
        raise _slot_error("citizen_status_error_same_time")
    return wanted


def _slot(text: str, desk: DeskConfig, now: datetime) -> datetime:
    try:
        slot = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _slot_error("citizen_error_slot_invalid") from None
    if slot.tzinfo is None:
        raise _slot_error("citizen_error_slot_invalid")
    if not is_bookable(slot, desk, now):
        raise _slot_error("citizen_error_slot_unavailable")
    return slot


def _slot_error(key: str) -> ValidationFailed:
    return ValidationFailed("citizen_status_error_form", details={"slot": key})


async def cancel(
    db: Database, metrics: Metrics, request_id: int, now: datetime
) -> None:
    """The citizen withdraws: new or claimed → cancelled."""
    async with db.write() as conn:
        before = await _changed(
            conn,
            request_id,
            CANCELLABLE,
            "citizen_status_cannot_cancel",
            state=State.CANCELLED.value,
            outcome=CANCEL_OUTCOME,
            closed_at=now,
            updated_at=now,
        )
        await _audit(conn, "request_cancelled", request_id, from_state=before)
        await request_closed(conn, request_id, State.CANCELLED.value)
        channel = await conn.scalar(
            sa.select(_req.c.channel).where(_req.c.id == request_id)
        )
    metrics.outcomes.labels(State.CANCELLED.value, CANCEL_OUTCOME, channel).inc()
    log.info("request_cancelled_by_citizen", request_id=request_id, from_state=before)


async def change_time(
    db: Database, request_id: int, wanted: NewTime, now: datetime
) -> None:
    """Move a request nobody picked up yet to ``wanted``; it is due then."""
    async with db.write() as conn:
        await _changed(
            conn,
            request_id,
            MOVABLE,
            "citizen_status_cannot_change",
            preferred=wanted.preferred,
            slot_start=wanted.slot_start,
            due_at=wanted.slot_start or now,
            updated_at=now,
        )
        await _audit(conn, "slot_changed", request_id, preferred=wanted.preferred)
    log.info("slot_changed_by_citizen", request_id=request_id)


async def ask_new_link(db: Database, request_id: int, now: datetime) -> bool:
    """Tell the employee the video link failed: a note with the request and an
    audit entry. False when the citizen asked less than :data:`LINK_HELP_QUIET`
    ago (nothing new is written)."""
    async with db.write() as conn:
        row = (await conn.execute(sa.select(_req).where(_req.c.id == request_id))).one()
        if row.channel != "video" or row.state not in LINK_HELP_STATES:
            raise Conflict("citizen_status_cannot_ask_link")
        if await _asked_since(conn, request_id, now - LINK_HELP_QUIET):
            return False
        await conn.execute(
            sa.insert(request_notes).values(
                request_id=request_id, user_id=None, body=LINK_HELP_NOTE, created_at=now
            )
        )
        await conn.execute(
            sa.update(_req).where(_req.c.id == request_id).values(updated_at=now)
        )
        await _audit(conn, "link_help_asked", request_id, state=row.state)
    log.info("link_help_asked", request_id=request_id)
    return True


async def _changed(
    conn: AsyncConnection,
    request_id: int,
    from_states: tuple[State, ...],
    refusal: str,
    **values: Any,
) -> str:
    """Apply ``values`` if the request is still in ``from_states``; returns the
    state it was in, or raises :class:`Conflict` with ``refusal``."""
    before = (
        await conn.execute(sa.select(_req.c.state).where(_req.c.id == request_id))
    ).scalar_one()
    result = await conn.execute(
        sa.update(_req)
        .where(
            _req.c.id == request_id,
            _req.c.state.in_([s.value for s in from_states]),
            _req.c.state == before,
        )
        .values(**values)
    )
    if result.rowcount != 1:
        raise Conflict(refusal)
    return str(before)


async def _asked_since(conn: AsyncConnection, request_id: int, since: datetime) -> bool:
    found = await conn.execute(
        sa.select(audit_log.c.id)
        .where(
            audit_log.c.request_id == request_id,
            audit_log.c.action == "link_help_asked",
            audit_log.c.at > since,
        )
        .limit(1)
    )
    return found.first() is not None


async def _audit(
    conn: AsyncConnection, action: str, request_id: int, **details: Any
) -> None:
    await audit.record(conn, action, username=CITIZEN, request_id=request_id, **details)
