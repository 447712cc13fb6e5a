"""The control plane's Ed25519 signing keys for media join tokens.

Private keys are stored encrypted (:mod:`controlplane.security.secret_box`, under the
server's ``secret_key``); the newest unretired key signs, and every unretired key
is published in the JWKS, so tokens signed just before a rotation keep working.
Retiring a key unpublishes it: media nodes then refuse its tokens.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
)

from beeldbel.tokens import MediaClaims, public_jwk, sign_media_token
from controlplane.base.errors import Conflict, NotFound
from controlplane.security.secret_box import SIGNING_KEYS, SecretBox, SecretUnreadable
from controlplane.storage.database import Database
from controlplane.storage.schema import signing_keys

log = structlog.get_logger()


class SigningKeyUnreadable(Exception):
    """A stored private key cannot be decrypted: the ``secret_key`` changed."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A signing key as listed by ``beeldbel keys list`` (no private part)."""

    kid: str
    created_at: datetime
    retired_at: datetime | None
    signing: bool


def _box(secret: bytes) -> SecretBox:
    return SecretBox(secret, SIGNING_KEYS)


def _new_kid(now: datetime) -> str:
    return f"{now:%Y%m%d}-{secrets.token_hex(4)}"


async def _insert_key(db: Database, secret: bytes) -> str:
    now = datetime.now(UTC)
    key = Ed25519PrivateKey.generate()
    kid = _new_kid(now)
    raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    async with db.write() as conn:
        await conn.execute(
            signing_keys.insert().values(
                kid=kid,
                private_key=_box(secret).seal(raw),
                public_jwk=public_jwk(key.public_key(), kid),
                created_at=now,
            )
        )
    return kid


async def ensure_signing_key(db: Database, secret: bytes) -> str:
    """The current signing key's ``kid``; creates the first key when there is none."""
    current = await _current_row(db)
    if current is not None:
        return str(current.kid)
    kid = await _insert_key(db, secret)
    log.info("signing_key_created", kid=kid)
    return kid


async def rotate(db: Database, secret: bytes) -> str:
    """Add a new key that signs from now on; older keys stay published."""
    kid = await _insert_key(db, secret)
    log.info("signing_key_rotated", kid=kid)
    return kid


async def retire(db: Database, kid: str) -> None:
    """Unpublish ``kid``; the key that signs now cannot be retired (rotate first)."""
    now = datetime.now(UTC)
    async with db.write() as conn:
        rows = (
            await conn.execute(
                sa.select(signing_keys.c.kid, signing_keys.c.retired_at)
                .where(signing_keys.c.retired_at.is_(None))
                .order_by(signing_keys.c.id.desc())
            )
        ).all()
        live = [row.kid for row in rows]
        if kid not in live:
            raise NotFound(f"no published signing key {kid!r}")
        if live[0] == kid:
            raise Conflict(f"{kid!r} is the current signing key; rotate first")
        await conn.execute(
            signing_keys.update()
            .where(signing_keys.c.kid == kid)
            .values(retired_at=now)
        )
    log.info("signing_key_retired", kid=kid)


async def list_keys(db: Database) -> list[KeyInfo]:
    """Every key, newest first; ``signing`` marks the one that signs now."""
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    signing_keys.c.kid,
                    signing_keys.c.created_at,
                    signing_keys.c.retired_at,
                ).order_by(signing_keys.c.id.desc())
            )
        ).all()
    signing = next((row.kid for row in rows if row.retired_at is None), None)
    return [
        KeyInfo(row.kid, row.created_at, row.retired_at, row.kid == signing)
        for row in rows
    ]


async def jwks(db: Database) -> dict[str, list[dict[str, Any]]]:
    """The JWKS document: the public JWK of every unretired key, newest first."""
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(signing_keys.c.public_jwk)
                .where(signing_keys.c.retired_at.is_(None))
                .order_by(signing_keys.c.id.desc())
            )
        ).all()
    return {"keys": [dict(row.public_jwk) for row in rows]}


async def _current_row(db: Database) -> Any:
    async with db.read() as conn:
        return (
            await conn.execute(
                sa.select(signing_keys.c.kid, signing_keys.c.private_key)
                .where(signing_keys.c.retired_at.is_(None))
                .order_by(signing_keys.c.id.desc())
                .limit(1)
            )
        ).first()


async def current_key(db: Database, secret: bytes) -> tuple[str, Ed25519PrivateKey]:
    """The ``kid`` and private key that sign tokens now."""
    row = await _current_row(db)
    if row is None:
        raise SigningKeyUnreadable("there is no signing key; start the control plane")
    try:
        raw = _box(secret).open(row.private_key)
    except SecretUnreadable:
        raise SigningKeyUnreadable(
            f"signing key {row.kid} cannot be decrypted: was secret_key changed? "
            "Run `beeldbel keys rotate` with the new secret"
        ) from None
    return str(row.kid), Ed25519PrivateKey.from_private_bytes(raw)


async def issue_media_token(
    db: Database,
    secret: bytes,
    *,
    issuer: str,
    audience: str,
    room: str,
    role: str,
    sub: str,
    ttl_seconds: int = 60,
) -> str:
    """A media join token for one participant (``sub``) of ``room``, signed with
    the newest key; ``audience`` is the media node's ``node_id``."""
    kid, key = await current_key(db, secret)
    claims = MediaClaims.issue(
        issuer=issuer,
        audience=audience,
        participant=sub,
        room=room,
        role=role,
        ttl=ttl_seconds,
    )
    return sign_media_token(claims, key, kid)
