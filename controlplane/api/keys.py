"""Integrator API keys: ``bb_<prefix>_<secret>``, of which only a hash is stored.

The prefix finds the row; the SHA-256 of the secret is compared in constant time.
A key carries scopes (``callbacks:write``, ``callbacks:read``, ``calls:write``)
and can be revoked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from controlplane.base.errors import Forbidden, Unauthorized
from controlplane.storage.database import Database
from controlplane.storage.schema import api_keys

SCOPES = ("callbacks:write", "callbacks:read", "calls:write")
KEY_PREFIX = "bb"
#: Compared against when the prefix is unknown, so both paths take as long.
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


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
    name = name.strip()
    if not name or len(name) > 100:
        raise ValueError("an API key name must be 1 to 100 characters")
    checked = _check_scopes(scopes)
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    async with db.write() as conn:
        await conn.execute(
            sa.insert(api_keys).values(
                name=name,
                prefix=prefix,
                key_hash=_hash(secret),
                scopes=list(checked),
                created_at=datetime.now(UTC),
            )
        )
    return f"{KEY_PREFIX}_{prefix}_{secret}"


async def list_api_keys(db: Database) -> list[dict[str, Any]]:
    """Every key without its hash: id, name, prefix, scopes, created_at, revoked_at."""
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
    return ApiKey(row.id, row.name, row.prefix, tuple(row.scopes))
