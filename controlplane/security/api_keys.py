"""Integrator API keys: ``bb_<prefix>_<secret>``, of which only a hash is stored.

The prefix finds the row; the SHA-256 of the secret is compared in constant time.
A key carries scopes (``callbacks:write``, ``callbacks:read``, ``calls:write``),
remembers when it was last used (to the minute) and can be revoked. The API
authenticates with it; the CLI and the admins' keys page manage it, which is why
it lives in ``security`` (below both ``api`` and ``staff``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.errors import Forbidden, Unauthorized
from controlplane.storage.database import Database
from controlplane.storage.schema import api_keys

SCOPES = ("callbacks:write", "callbacks:read", "calls:write")
NAME_MAX = 100
#: More work in the transaction that makes or revokes key ``key_id``.
Also = Callable[[AsyncConnection, int], Awaitable[None]]
KEY_PREFIX = "bb"
#: Compared against when the prefix is unknown, so both paths take as long.
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()
#: How stale ``last_used_at`` may get: a busy key is not written on every call.
LAST_USE_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An authenticated integrator: who it is and what it may do."""

    id: int
    name: str
    prefix: str
    scopes: tuple[str, ...]

    def require(self, scope: str) -> None:
        """Raise :class:`Forbidden` unless this key has ``scope``."""
        if scope not in self.scopes:
            raise Forbidden(f"this API key lacks the scope {scope}")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_scopes(scopes: tuple[str, ...]) -> tuple[str, ...]:
    if not scopes:
        raise ValueError(f"an API key needs at least one scope of {', '.join(SCOPES)}")
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValueError(
            f"unknown scope {unknown[0]!r}; choose from {', '.join(SCOPES)}"
        )
    return tuple(s for s in SCOPES if s in scopes)


async def create_api_key(db: Database, name: str, scopes: tuple[str, ...]) -> str:
    """Store a new key and return it in full; it cannot be shown again."""
    key, _key_id = await create_api_key_with_id(db, name, scopes)
    return key


async def create_api_key_with_id(
    db: Database, name: str, scopes: tuple[str, ...], *, also: Also | None = None
) -> tuple[str, int]:
    """:func:`create_api_key`, plus the new row's id; ``also(conn, key_id)`` runs
    in the same transaction (e.g. the audit entry)."""
    name = name.strip()
    if not name or len(name) > NAME_MAX:
        raise ValueError(f"an API key name must be 1 to {NAME_MAX} characters")
    checked = _check_scopes(scopes)
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    async with db.write() as conn:
        key_id = (
            await conn.execute(
                sa.insert(api_keys)
                .values(
                    name=name,
                    prefix=prefix,
                    key_hash=_hash(secret),
                    scopes=list(checked),
                    created_at=datetime.now(UTC),
                )
                .returning(api_keys.c.id)
            )
        ).scalar_one()
        if also is not None:
            await also(conn, int(key_id))
    return f"{KEY_PREFIX}_{prefix}_{secret}", int(key_id)


async def list_api_keys(db: Database) -> list[dict[str, Any]]:
    """Every key without its hash: id, name, prefix, scopes, created_at,
    last_used_at, revoked_at."""
    columns = [c for c in api_keys.c if c.name != "key_hash"]
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(*columns).order_by(api_keys.c.id))).all()
    return [dict(row._mapping) for row in rows]


async def revoke_api_key(db: Database, prefix: str) -> bool:
    """Revoke the active key with ``prefix``; False when there is none."""
    async with db.write() as conn:
        result = await conn.execute(
            sa.update(api_keys)
            .where(api_keys.c.prefix == prefix, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC))
        )
    return bool(result.rowcount)


async def revoke_api_key_by_id(
    db: Database, key_id: int, *, also: Also | None = None
) -> str | None:
    """Revoke the active key ``key_id``; its name, or None when there is none.
    ``also(conn, key_id)`` runs in the same transaction."""
    async with db.write() as conn:
        name = (
            await conn.execute(
                sa.update(api_keys)
                .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
                .returning(api_keys.c.name)
            )
        ).scalar_one_or_none()
        if name is not None and also is not None:
            await also(conn, key_id)
    return None if name is None else str(name)


def split_key(key: str) -> tuple[str, str] | None:
    """``bb_<prefix>_<secret>`` → ``(prefix, secret)``, or None if malformed."""
    head, _, rest = key.partition("_")
    prefix, _, secret = rest.partition("_")
    if head != KEY_PREFIX or not prefix or not secret or len(prefix) > 16:
        return None
    return prefix, secret


async def authenticate(db: Database, authorization: str | None) -> ApiKey:
    """The key in an ``Authorization: Bearer`` header; :class:`Unauthorized` if none."""
    if not authorization:
        raise Unauthorized("an API key is needed: Authorization: Bearer <key>")
    scheme, _, token = authorization.partition(" ")
    parts = split_key(token.strip()) if scheme.lower() == "bearer" else None
    if parts is None:
        raise Unauthorized("the Authorization header must be Bearer bb_<prefix>_<key>")
    prefix, secret = parts
    async with db.read() as conn:
        row = (
            await conn.execute(sa.select(api_keys).where(api_keys.c.prefix == prefix))
        ).first()
    expected = row.key_hash if row is not None else _DUMMY_HASH
    matches = hmac.compare_digest(_hash(secret), expected)
    if row is None or not matches or row.revoked_at is not None:
        raise Unauthorized("the API key is unknown or revoked")
    await _note_use(db, row.id, row.last_used_at)
    return ApiKey(row.id, row.name, row.prefix, tuple(row.scopes))


async def _note_use(db: Database, key_id: int, last: datetime | None) -> None:
    """Remember that the key was used now, at most once per minute."""
    now = datetime.now(UTC)
    if last is not None and now - last < LAST_USE_PRECISION:
        return
    async with db.write() as conn:
        await conn.execute(
            sa.update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now)
        )
