"""A request once its video call is over: never left "being called".

However a video call ends (the employee ends it, the media node is lost, the
node sweep ends it), :func:`call_ended` gives a request that was being called
back to its holder as claimed, its attempt counted; from there the holder closes
it (:func:`close_after_call`, the call page's one-step "handled / follow-up
needed / not reached", or the request page's forms) or calls again. A switch to
the phone is the exception: the request stays calling, by phone now.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
import structlog

from beeldbel.config import DeskConfig
from controlplane.base.metrics import Metrics
from controlplane.requests.callbacks import State
from controlplane.requests.queue import complete, no_answer
from controlplane.requests.queue_items import Actor, Request, load_request
from controlplane.requests.transitions import audit_change, form_error, now_or_utc
from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests

log = structlog.get_logger()

_req = callback_requests
#: The end-of-call step's choices, and the outcome each closes with.
AFTER_CALL = {"handled": "resolved", "follow_up": "follow_up", "not_reached": ""}


async def call_ended(
    db: Database, request_id: int, actor: Actor, *, now: datetime | None = None
) -> Request | None:
    """The request's video call is over: calling → claimed, still held by the
    same employee; None when it was not being called by video (closed, or moved
    on already). Ending the call was authorised by the caller."""
    now = now_or_utc(now)
    async with db.write() as conn:
        result = await conn.execute(
            sa.update(_req)
            .where(
                _req.c.id == request_id,
                _req.c.state == State.CALLING.value,
                _req.c.channel == "video",
            )
            .values(state=State.CLAIMED.value, updated_at=now)
        )
        if result.rowcount != 1:
            return None
        await audit_change(conn, "call_over", actor, request_id)
        request = await load_request(conn, request_id)
    log.info("call_over", request_id=request_id, user_id=actor.id)
    return request


async def close_after_call(
    db: Database,
    metrics: Metrics,
    desk: DeskConfig,
    request_id: int,
    actor: Actor,
    result: str,
) -> Request:
    """Close the request in one step once its call is over: ``handled`` and
    ``follow_up`` complete it with that outcome, ``not_reached`` is a call nobody
    answered (back in the queue for a retry, or closed after the last attempt)."""
    if result not in AFTER_CALL:
        raise form_error(result="console_field_result_invalid")
    outcome = AFTER_CALL[result]
    if outcome:
        return await complete(db, metrics, request_id, actor, outcome)
    return await no_answer(db, metrics, desk, request_id, actor)
