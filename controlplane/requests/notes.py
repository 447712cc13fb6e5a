"""Free-text notes on a request: checked, then kept in ``request_notes`` only
(personal data: erased by retention, never copied to a log or the audit log).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.requests.queue_items import Actor
from controlplane.requests.validation import has_controls
from controlplane.storage.schema import request_notes

NOTE_MAX_CHARS = 2000


def clean_note(
    body: str | None, errors: dict[str, str], *, required: bool
) -> str | None:
    """The note without surrounding blanks (None when empty); a problem goes into
    ``errors["note"]``."""
    text = (body or "").strip()
    if not text:
        if required:
            errors["note"] = "console_field_note_required"
        return None
    if len(text) > NOTE_MAX_CHARS:
        errors["note"] = "console_field_note_too_long"
    elif has_controls(text, allowed="\n\r\t"):
        errors["note"] = "console_field_note_invalid"
    return text


async def insert_note(
    conn: AsyncConnection, request_id: int, actor: Actor, body: str, now: datetime
) -> None:
    """Keep ``body`` with the request, in the caller's transaction."""
    await conn.execute(
        sa.insert(request_notes).values(
            request_id=request_id, user_id=actor.id, body=body, created_at=now
        )
    )
