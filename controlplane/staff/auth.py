"""Staff authentication: password hashes, TOTP codes, sessions and the staff guard.

A session cookie holds a random token; the database keeps only its SHA-256. A
session is *pending* after the password and *full* after the second factor; only
full sessions count for :func:`current_staff`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pyotp
import sqlalchemy as sa
from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import Config
from controlplane.base import rendering
from controlplane.base.errors import Forbidden, Unauthorized
from controlplane.base.settings import CONFIG
from controlplane.requests import Actor
from controlplane.security import cookies
from controlplane.storage.database import DB
from controlplane.storage.schema import sessions, users

ROLES = ("agent", "supervisor", "admin")
_RANK = {role: rank for rank, role in enumerate(ROLES)}
SESSION_COOKIE = "bb_session"
#: Time to finish the second factor (or first-login set-up) after the password.
PENDING_MINUTES = 15
#: ``last_seen_at`` is written at most this often, to spare the database.
TOUCH_SECONDS = 60
TOTP_STEP = 30

# OWASP's first argon2id choice (46 MiB, 1 pass, 1 lane): as strong as the
# RFC 9106 profile at a quarter of the CPU time on a two-core desk server, so
# a burst of logins cannot starve the queue. Older hashes are upgraded at login.
_hasher = PasswordHasher(time_cost=1, memory_cost=47104, parallelism=1)
_dummy_hash: str | None = None


@dataclass(frozen=True, slots=True)
class StaffUser:
    id: int
    username: str
    role: str

    def has_role(self, role: str) -> bool:
        """True when this user's role is ``role`` or ranks above it."""
        return _RANK.get(self.role, -1) >= _RANK[role]

    @property
    def actor(self) -> Actor:
        """This staff member as who acts on the queue."""
        return Actor(self.id, self.username, self.role)


@dataclass(frozen=True, slots=True)
class Session:
    """A session row joined with its (active) user."""

    id_hash: str
    user: StaffUser
    mfa_done: bool
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime


# passwords


async def hash_password(password: str) -> str:
    """An argon2id hash, computed off the event loop."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> tuple[bool, str | None]:
    """Check ``password``; returns (ok, new hash if the parameters changed).

    With ``stored=None`` (unknown user) a dummy hash is checked, so the answer
    takes about as long as for a real account.
    """
    global _dummy_hash
    if stored is None:
        if _dummy_hash is None:
            _dummy_hash = await hash_password(secrets.token_urlsafe(16))
        await asyncio.to_thread(_verify, _dummy_hash, password)
        return False, None
    if not await asyncio.to_thread(_verify, stored, password):
        return False, None
    if _hasher.check_needs_rehash(stored):
        return True, await hash_password(password)
    return True, None


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# TOTP


def new_totp_secret() -> str:
    return pyotp.random_base32(32)


def totp_step(now: float | None = None) -> int:
    return int((time.time() if now is None else now) // TOTP_STEP)


def match_totp(
    secret: str, code: str, last_step: int, now: float | None = None
) -> int | None:
    """The time step ``code`` belongs to (±1 step of drift), if newer than
    ``last_step``; ``None`` for a wrong or replayed code."""
    code = code.strip().replace(" ", "")
    if len(code) != 6 or not (code.isascii() and code.isdigit()):
        return None
    totp = pyotp.TOTP(secret)
    current = totp_step(now)
    for step in (current - 1, current, current + 1):
        if step > last_step and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def provisioning_uri(secret: str, username: str, issuer: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


# sessions


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(
    conn: AsyncConnection, config: Config, user_id: int, *, mfa_done: bool
) -> str:
    """Insert a session row and return the cookie token (never stored itself)."""
    token = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    lifetime = (
        timedelta(hours=config.security.session_absolute_hours)
        if mfa_done
        else timedelta(minutes=PENDING_MINUTES)
    )
    await conn.execute(
        sa.insert(sessions).values(
            id_hash=_hash_token(token),
            user_id=user_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
            mfa_done=mfa_done,
            csrf_token=secrets.token_hex(32),
        )
    )
    return token


async def end_session(conn: AsyncConnection, id_hash: str) -> None:
    await conn.execute(sa.delete(sessions).where(sessions.c.id_hash == id_hash))


async def purge_expired_sessions(conn: AsyncConnection, config: Config) -> None:
    """Delete sessions past their absolute or idle limit (abandoned browsers)."""
    now = datetime.now(UTC)
    idle = timedelta(minutes=config.security.session_idle_minutes)
    await conn.execute(
        sa.delete(sessions).where(
            sa.or_(sessions.c.expires_at <= now, sessions.c.last_seen_at <= now - idle)
        )
    )


async def end_user_sessions(conn: AsyncConnection, user_id: int) -> None:
    await conn.execute(sa.delete(sessions).where(sessions.c.user_id == user_id))


def set_session_cookie(
    response: web.StreamResponse, config: Config, token: str
) -> None:
    cookies.set_cookie(response, config, SESSION_COOKIE, token)


def clear_session_cookie(response: web.StreamResponse, config: Config) -> None:
    cookies.delete_cookie(response, config, SESSION_COOKIE)


async def load_session(request: web.Request) -> Session | None:
    """The caller's live session, full or pending; expired ones are deleted."""
    config = request.app[CONFIG]
    token = cookies.get_cookie(request, config, SESSION_COOKIE)
    if not token:
        return None
    id_hash = _hash_token(token)
    db = request.app[DB]
    async with db.read() as conn:
        row = (await conn.execute(_session_query(id_hash))).first()
    if row is None:
        return None
    now = datetime.now(UTC)
    if not session_alive(config, row.expires_at, row.last_seen_at, now):
        async with db.write() as conn:
            await end_session(conn, id_hash)
        return None
    last_seen = row.last_seen_at
    if (now - last_seen).total_seconds() >= TOUCH_SECONDS:
        async with db.write() as conn:
            await conn.execute(
                sa.update(sessions)
                .where(sessions.c.id_hash == id_hash)
                .values(last_seen_at=now)
            )
        last_seen = now
    return Session(
        id_hash=id_hash,
        user=StaffUser(id=row.id, username=row.username, role=row.role),
        mfa_done=row.mfa_done,
        created_at=row.created_at,
        last_seen_at=last_seen,
        expires_at=row.expires_at,
    )


def _session_query(id_hash: str) -> sa.Select[Any]:
    """The session with ``id_hash`` and its user, if the account is active."""
    return (
        sa.select(
            sessions.c.id_hash,
            sessions.c.mfa_done,
            sessions.c.created_at,
            sessions.c.last_seen_at,
            sessions.c.expires_at,
            users.c.id,
            users.c.username,
            users.c.role,
        )
        .join(users, users.c.id == sessions.c.user_id)
        .where(sessions.c.id_hash == id_hash, users.c.active.is_(True))
    )


def session_alive(
    config: Config, expires_at: datetime, last_seen_at: datetime, now: datetime
) -> bool:
    """Whether a session still counts: not expired and not idle too long."""
    idle = timedelta(minutes=config.security.session_idle_minutes)
    return now < expires_at and now - last_seen_at < idle


_CURRENT = web.RequestKey("current_staff_session", object)


async def current_session(request: web.Request) -> Session | None:
    """:func:`load_session`, cached on the request."""
    if _CURRENT in request:
        cached = request[_CURRENT]
        return cached if isinstance(cached, Session) else None
    session = await load_session(request)
    request[_CURRENT] = session
    return session


async def current_staff(request: web.Request) -> StaffUser | None:
    """The signed-in staff member (password and second factor done), or ``None``.

    Also makes ``staff`` available to templates.
    """
    session = await current_session(request)
    if session is None or not session.mfa_done:
        return None
    request[rendering.STAFF] = session.user
    return session.user


def forget_current(request: web.Request) -> None:
    """Drop the cached session (after login, logout or rotation)."""
    request.pop(_CURRENT, None)
    request.pop(rendering.STAFF, None)


async def require_staff(request: web.Request, role: str = "agent") -> StaffUser:
    """The signed-in staff member with at least ``role``.

    Pages redirect to the login when nobody is signed in; JSON and event-stream
    requests get :class:`Unauthorized`. Too low a role is :class:`Forbidden`.
    """
    user = await current_staff(request)
    if user is None:
        accept = request.headers.get("Accept", "")
        if "application/json" in accept or "text/event-stream" in accept:
            raise Unauthorized("staff_auth_required")
        # after login a form's POST address cannot be opened: go to the queue
        back = request.path_qs if request.method in ("GET", "HEAD") else None
        raise web.HTTPSeeOther(login_url(back))
    if not user.has_role(role):
        raise Forbidden("error_forbidden")
    return user


def login_url(next_path: str | None = None) -> str:
    if next_path and safe_next(next_path) and next_path != "/staff/login":
        return "/staff/login?next=" + quote(next_path, safe="/")
    return "/staff/login"


def safe_next(value: str | None) -> str | None:
    """``value`` if it is a local staff path to return to after login."""
    if (
        value
        and value.startswith("/staff")
        and not value.startswith("//")
        and "\\" not in value
        and all(ord(c) > 31 for c in value)
    ):
        return value
    return None
