"""Webhook endpoints: where an API key's events go, which types, signed how.

Each endpoint belongs to one API key (``api_key_id``), has a URL that
:func:`~controlplane.webhooks.addresses.check_url` allows, the event types it
wants, and a Standard Webhooks signing secret (``whsec_…``) that is shown once
when made or rotated and stored sealed. After a rotation the previous secret
keeps signing beside the new one for ``secret_overlap_hours``. Every change is
audited in its own transaction.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.security import audit
from controlplane.security.secret_box import SecretBox
from controlplane.storage.database import Database
from controlplane.storage.schema import api_keys, webhook_endpoints, webhook_outbox
from controlplane.webhooks.addresses import AddressRefused, check_name, check_url
from controlplane.webhooks.errors import EndpointInvalid
from controlplane.webhooks.events import EVENT_TYPES

#: Signing secrets of webhook endpoints (``webhook_endpoints.secret``).
WEBHOOK_SECRETS = b"beeldbel webhook secrets v1"
URL_MAX = 2000
_ep = webhook_endpoints


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    api_key_id: int
    url: str
    event_types: tuple[str, ...]
    created_at: datetime
    #: Until when the secret before the last rotation still signs, if it does.
    previous_until: datetime | None
    pending: int = 0
    dead: int = 0


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def signing_secrets(row: Any, secret_key: bytes, now: datetime) -> tuple[str, ...]:
    """The secrets that sign now: the current one, and the previous one during
    its overlap."""
    box = SecretBox(secret_key, WEBHOOK_SECRETS)
    found = [box.open(row.secret).decode("ascii")]
    if row.previous_secret and row.previous_until and row.previous_until > now:
        found.append(box.open(row.previous_secret).decode("ascii"))
    return tuple(found)


def check_event_types(types: tuple[str, ...]) -> tuple[str, ...]:
    """``types`` in the canonical order; all of them when none are given."""
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        raise EndpointInvalid(
            f"unknown event type {unknown[0]!r}; choose from {', '.join(EVENT_TYPES)}"
        )
    return tuple(t for t in EVENT_TYPES if t in types or not types)


async def _key_id(conn: AsyncConnection, prefix: str) -> int:
    key_id = await conn.scalar(
        sa.select(api_keys.c.id).where(
            api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None)
        )
    )
    if key_id is None:
        raise EndpointInvalid(f"no API key in use has the prefix {prefix!r}")
    return int(key_id)


async def add_endpoint(
    db: Database,
    secret_key: bytes,
    key_prefix: str,
    url: str,
    event_types: tuple[str, ...],
    *,
    allow_private: bool,
    username: str | None = None,
) -> tuple[Endpoint, str]:
    """A new endpoint for the API key with ``key_prefix``, and its secret (shown
    once)."""
    if len(url) > URL_MAX:
        raise EndpointInvalid(f"the URL is longer than {URL_MAX} characters")
    try:
        parsed = check_url(url, allow_private=allow_private)
        await check_name(parsed, allow_private=allow_private)
    except (AddressRefused, ValueError) as exc:
        raise EndpointInvalid(f"URL {url!r}: {exc}") from None
    types = check_event_types(event_types)
    secret, now = new_secret(), datetime.now(UTC)
    sealed = SecretBox(secret_key, WEBHOOK_SECRETS).seal(secret.encode("ascii"))
    async with db.write() as conn:
        key_id = await _key_id(conn, key_prefix)
        endpoint_id = await conn.scalar(
            sa.insert(_ep)
            .values(
                api_key_id=key_id,
                url=url,
                event_types=list(types),
                secret=sealed,
                created_at=now,
            )
            .returning(_ep.c.id)
        )
        assert endpoint_id is not None  # noqa: S101
        await audit.record(
            conn,
            "webhook_endpoint_added",
            username=username,
            endpoint_id=endpoint_id,
            api_key_id=key_id,
            event_types=list(types),
        )
    return Endpoint(int(endpoint_id), key_id, url, types, now, None), secret


async def rotate_secret(
    db: Database,
    secret_key: bytes,
    endpoint_id: int,
    overlap_hours: int,
    *,
    username: str | None = None,
) -> str:
    """A new secret for the endpoint (shown once); the old one signs too for
    ``overlap_hours``."""
    secret = new_secret()
    box = SecretBox(secret_key, WEBHOOK_SECRETS)
    until = datetime.now(UTC) + timedelta(hours=overlap_hours)
    async with db.write() as conn:
        key_id = await conn.scalar(
            sa.update(_ep)
            .where(_ep.c.id == endpoint_id)
            .values(
                previous_secret=_ep.c.secret,
                previous_until=until,
                secret=box.seal(secret.encode("ascii")),
            )
            .returning(_ep.c.api_key_id)
        )
        if key_id is None:
            raise EndpointInvalid(f"there is no webhook endpoint {endpoint_id}")
        await audit.record(
            conn,
            "webhook_secret_rotated",
            username=username,
            endpoint_id=endpoint_id,
            api_key_id=key_id,
            overlap_hours=overlap_hours,
        )
    return secret


async def remove_endpoint(
    db: Database, endpoint_id: int, *, username: str | None = None
) -> None:
    """Delete the endpoint and what its outbox still held for it."""
    async with db.write() as conn:
        await conn.execute(
            sa.delete(webhook_outbox).where(webhook_outbox.c.endpoint_id == endpoint_id)
        )
        key_id = await conn.scalar(
            sa.delete(_ep).where(_ep.c.id == endpoint_id).returning(_ep.c.api_key_id)
        )
        if key_id is None:
            raise EndpointInvalid(f"there is no webhook endpoint {endpoint_id}")
        # the key's id stays in the log after the endpoint is gone
        await audit.record(
            conn,
            "webhook_endpoint_removed",
            username=username,
            endpoint_id=endpoint_id,
            api_key_id=key_id,
        )


async def list_endpoints(db: Database) -> list[Endpoint]:
    """Every endpoint, with how many of its events are pending and dead."""
    out = webhook_outbox
    counts = (
        sa.select(
            out.c.endpoint_id,
            sa.func.sum(sa.case((out.c.state == "pending", 1), else_=0)).label("p"),
            sa.func.sum(sa.case((out.c.state == "dead", 1), else_=0)).label("d"),
        )
        .group_by(out.c.endpoint_id)
        .subquery()
    )
    query = (
        sa.select(_ep, counts.c.p, counts.c.d)
        .outerjoin(counts, counts.c.endpoint_id == _ep.c.id)
        .order_by(_ep.c.id)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [
        Endpoint(
            r.id,
            r.api_key_id,
            r.url,
            tuple(r.event_types),
            r.created_at,
            r.previous_until,
            int(r.p or 0),
            int(r.d or 0),
        )
        for r in rows
    ]
