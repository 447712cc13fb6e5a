"""staff TOTP secrets encrypted at rest

Widens ``users.totp_secret`` for Fernet tokens and encrypts the plain secrets
already stored. Both directions need the server's ``secret_key``, which
``Database.migrate()`` / ``beeldbel migrate`` hand in; without it they refuse
rather than leave a plain secret behind (or lose one).

Revision ID: 0004_totp_secrets_encrypted
Revises: 0003_call_media_node
Create Date: 2026-12-08 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

from controlplane.security.secret_box import (
    SecretUnreadable,
    open_totp_secret,
    seal_totp_secret,
)

revision: str = "0004_totp_secrets_encrypted"
down_revision: str | None = "0003_call_media_node"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_users = sa.table("users", sa.column("id", sa.Integer), sa.column("totp_secret"))
#: Every Fernet token starts so (version byte 0x80); a base32 secret never does.
_FERNET_PREFIX = "gAAAAA"


def _stored() -> dict[int, str]:
    """Every stored TOTP secret by user id."""
    rows = op.get_bind().execute(
        sa.select(_users.c.id, _users.c.totp_secret).where(
            _users.c.totp_secret.is_not(None)
        )
    )
    return {int(row.id): str(row.totp_secret) for row in rows}


def _secret_key(direction: str) -> bytes:
    key: bytes | None = context.config.attributes.get("secret_key")
    if not key:
        raise RuntimeError(
            f"0004 must {direction} the stored TOTP secrets and needs the server's "
            "secret_key: run `beeldbel migrate` (or the control plane) with its config"
        )
    return key


def _rewrite(user_id: int, value: str) -> None:
    op.get_bind().execute(
        _users.update().where(_users.c.id == user_id).values(totp_secret=value)
    )


def _open_all(key: bytes, sealed: dict[int, str]) -> dict[int, str]:
    opened = {}
    for user_id, token in sealed.items():
        try:
            opened[user_id] = open_totp_secret(key, token)
        except SecretUnreadable:
            raise RuntimeError(
                f"0004 downgrade: the TOTP secret of user {user_id} does not "
                "decrypt with this secret_key; use the right key or reset that "
                "user (`beeldbel admin user-reset`) first"
            ) from None
    return opened


def _resize(old: int, new: int) -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column(
            "totp_secret",
            existing_type=sa.String(length=old),
            type_=sa.String(length=new),
            existing_nullable=True,
        )


# Keys are checked and every value computed before anything is written: SQLite
# runs DDL outside a transaction, so a refusal must come first.


def upgrade() -> None:
    plain = {
        user_id: value
        for user_id, value in _stored().items()
        if not value.startswith(_FERNET_PREFIX)
    }
    key = _secret_key("encrypt") if plain else b""
    sealed = {user_id: seal_totp_secret(key, value) for user_id, value in plain.items()}
    _resize(64, 255)
    for user_id, token in sealed.items():
        _rewrite(user_id, token)


def downgrade() -> None:
    sealed = {
        user_id: value
        for user_id, value in _stored().items()
        if value.startswith(_FERNET_PREFIX)
    }
    opened = _open_all(_secret_key("decrypt"), sealed) if sealed else {}
    for user_id, secret in opened.items():
        _rewrite(user_id, secret)
    _resize(255, 64)
