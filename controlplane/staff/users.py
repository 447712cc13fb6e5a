"""Staff accounts: create, reset, change role, (de)activate, list.

Used by the admin pages and the ``beeldbel`` CLI. Each change is written to the
audit log in the same transaction; ``actor`` is the admin doing it (``None`` for
the command line).
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.security import audit
from controlplane.security.secret_box import seal_totp_secret
from controlplane.staff.auth import ROLES, StaffUser, end_user_sessions, hash_password
from controlplane.storage.database import Database
from controlplane.storage.schema import users

USERNAME = re.compile(r"[a-z0-9._-]{3,64}")
MIN_PASSWORD = 12
MAX_PASSWORD = 1024
BOOTSTRAP_USERNAME = "admin"
# no 0/O, 1/l/I: one-time passwords are read aloud and typed over
_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class UserError(ValueError):
    """A user change that cannot be done; ``field`` names the form field."""

    def __init__(self, message: str, *, field: str = "username", key: str = "") -> None:
        super().__init__(message)
        self.field = field
        #: translation key for the staff pages
        self.key = key


def one_time_password() -> str:
    """20 unambiguous characters (~114 bits) in groups of five."""
    chars = "".join(secrets.choice(_ALPHABET) for _ in range(20))
    return "-".join(chars[i : i + 5] for i in range(0, 20, 5))


def check_username(username: str) -> None:
    if not USERNAME.fullmatch(username):
        raise UserError(
            f"username {username!r} must be 3-64 of a-z, 0-9, '.', '_', '-'",
            key="admin_error_username",
        )


def check_role(role: str) -> None:
    if role not in ROLES:
        raise UserError(
            f"role {role!r} must be one of {', '.join(ROLES)}",
            field="role",
            key="admin_error_role",
        )


def check_new_password(password: str, *, username: str = "") -> str | None:
    """The translation key of what is wrong with a chosen password, or ``None``."""
    if len(password) < MIN_PASSWORD:
        return "staff_auth_error_password_short"
    if len(password) > MAX_PASSWORD:
        return "staff_auth_error_password_long"
    if username and password.lower() == username.lower():
        return "staff_auth_error_password_username"
    return None


async def create_user(
    db: Database,
    username: str,
    role: str,
    *,
    password: str | None = None,
    totp_secret: str | None = None,
    secret_key: bytes | None = None,
    actor: StaffUser | None = None,
) -> str:
    """Create an account and return its password.

    Without ``password`` a one-time password is generated, to be changed at first
    login. With ``totp_secret`` the second factor is already set up (tests and
    automation); it is stored encrypted under ``secret_key``, which it needs.
    Otherwise the user enrols an authenticator at first login.
    """
    check_username(username)
    check_role(role)
    sealed = None
    if totp_secret is not None:
        if secret_key is None:
            raise ValueError("a TOTP secret is stored encrypted: pass secret_key")
        sealed = seal_totp_secret(secret_key, totp_secret)
    chosen = password if password is not None else one_time_password()
    password_hash = await hash_password(chosen)
    taken = UserError(
        f"username {username!r} is taken", key="admin_error_username_taken"
    )
    try:
        async with db.write() as conn:
            if await _user_id(conn, username) is not None:
                raise taken
            await conn.execute(
                sa.insert(users).values(
                    username=username,
                    password_hash=password_hash,
                    role=role,
                    totp_secret=sealed,
                    totp_confirmed=sealed is not None,
                    totp_last_step=0,
                    must_change_password=password is None,
                    failed_logins=0,
                    locked_until=None,
                    active=True,
                    created_at=datetime.now(UTC),
                )
            )
            await _record(conn, "user_created", actor, target=username, role=role)
    except sa.exc.IntegrityError:
        # created at the same moment by another admin
        raise taken from None
    return chosen


async def reset_user(
    db: Database, username: str, *, actor: StaffUser | None = None
) -> str:
    """New one-time password, second factor cleared, sessions ended, unlocked."""
    password = one_time_password()
    password_hash = await hash_password(password)
    async with db.write() as conn:
        user_id = await _existing_user_id(conn, username)
        await _update_user(
            conn,
            user_id,
            password_hash=password_hash,
            must_change_password=True,
            totp_secret=None,
            totp_confirmed=False,
            totp_last_step=0,
            failed_logins=0,
            locked_until=None,
        )
        await end_user_sessions(conn, user_id)
        await _record(conn, "user_reset", actor, target=username)
    return password


async def set_role(
    db: Database, username: str, role: str, *, actor: StaffUser | None = None
) -> None:
    check_role(role)
    async with db.write() as conn:
        user_id = await _existing_user_id(conn, username)
        _refuse_self(actor, user_id, "you cannot change your own role", "role")
        await _update_user(conn, user_id, role=role)
        await _record(conn, "user_role_changed", actor, target=username, role=role)


async def set_active(
    db: Database, username: str, active: bool, *, actor: StaffUser | None = None
) -> None:
    """Deactivating also ends the user's sessions."""
    async with db.write() as conn:
        user_id = await _existing_user_id(conn, username)
        _refuse_self(actor, user_id, "you cannot deactivate yourself", "active")
        await _update_user(conn, user_id, active=active)
        if not active:
            await end_user_sessions(conn, user_id)
        action = "user_reactivated" if active else "user_deactivated"
        await _record(conn, action, actor, target=username)


async def unlock_user(
    db: Database, username: str, *, actor: StaffUser | None = None
) -> None:
    """End a lock after failed logins, keeping password and second factor."""
    async with db.write() as conn:
        user_id = await _existing_user_id(conn, username)
        await _update_user(conn, user_id, failed_logins=0, locked_until=None)
        await _record(conn, "user_unlocked", actor, target=username)


async def list_users(db: Database) -> list[dict[str, Any]]:
    """Every account by username: id, username, role, active, locked_until,
    locked (now), must_change_password, totp_confirmed, created_at."""
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    users.c.id,
                    users.c.username,
                    users.c.role,
                    users.c.active,
                    users.c.locked_until,
                    users.c.must_change_password,
                    users.c.totp_confirmed,
                    users.c.created_at,
                ).order_by(users.c.username)
            )
        ).all()
    now = datetime.now(UTC)
    return [
        {
            **row._mapping,
            "locked": row.locked_until is not None and row.locked_until > now,
        }
        for row in rows
    ]


async def bootstrap_admin(db: Database) -> str | None:
    """On an empty database, create ``admin`` and return its one-time password."""
    async with db.read() as conn:
        count = (
            await conn.execute(sa.select(sa.func.count()).select_from(users))
        ).scalar_one()
    if count:
        return None
    try:
        return await create_user(db, BOOTSTRAP_USERNAME, "admin")
    except UserError:
        return None


async def _user_id(conn: AsyncConnection, username: str) -> int | None:
    found = (
        await conn.execute(sa.select(users.c.id).where(users.c.username == username))
    ).scalar_one_or_none()
    return int(found) if found is not None else None


async def _existing_user_id(conn: AsyncConnection, username: str) -> int:
    user_id = await _user_id(conn, username)
    if user_id is None:
        raise UserError(f"no user {username!r}", key="admin_error_no_user")
    return user_id


def _refuse_self(
    actor: StaffUser | None, user_id: int, message: str, field: str
) -> None:
    """Admins cannot lock themselves out by changing their own account."""
    if actor is not None and actor.id == user_id:
        raise UserError(message, field=field, key="admin_error_self")


async def _update_user(conn: AsyncConnection, user_id: int, **values: Any) -> None:
    await conn.execute(sa.update(users).where(users.c.id == user_id).values(**values))


async def _record(
    conn: AsyncConnection, action: str, actor: StaffUser | None, **details: Any
) -> None:
    if actor is None:
        details["via"] = "cli"
    await audit.record(
        conn,
        action,
        user_id=actor.id if actor else None,
        username=actor.username if actor else None,
        **details,
    )
