"""The audit log: every staff action, who did it and on which request.

Entries outlive the personal data they concern, so ``details`` holds codes and
states only, never a citizen's name, number or free text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.storage.schema import audit_log


async def record(
    conn: AsyncConnection,
    action: str,
    *,
    user_id: int | None = None,
    username: str | None = None,
    request_id: int | None = None,
    **details: Any,
) -> None:
    """Write one entry in the caller's transaction, so it commits with the action."""
    await conn.execute(
        sa.insert(audit_log).values(
            at=datetime.now(UTC),
            user_id=user_id,
            username=username,
            action=action,
            request_id=request_id,
            details=details,
        )
    )
