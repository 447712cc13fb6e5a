"""Test helper: the audit log's entries of one action, as the tests check them."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log


async def audited(client: Any, action: str) -> list[dict[str, Any]]:
    """The details of every ``action`` entry in the client's app, oldest first."""
    async with client.server.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.details)
            .where(audit_log.c.action == action)
            .order_by(audit_log.c.id)
        )
        return [dict(row.details) for row in rows]
