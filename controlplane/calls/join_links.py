"""Single-use join links for citizens and interpreters, and the browser session
they are exchanged for.

A link is ``{public_url}/gesprek#t=<token>``: the token sits in the fragment, so it
never reaches a server log, a proxy or a ``Referer``. The landing page's script
reads it, removes it from the address bar and POSTs it to ``/gesprek/openen``,
which exchanges it exactly once for a browser-session cookie (``bb_call``). Only
SHA-256 hashes of the token and of the session are stored. Opening the link a
second time, from anywhere, is refused; the browser holding the session can
reconnect. When the call ends, :func:`void_room` voids every link and session of
the room for joining; the session still opens the survey for a while
(:func:`current_survey_session`). A new link from the staff call page
(:func:`replace_link`) voids the role's earlier links and their sessions in the
same transaction, with the new link's creation time: so a voided link for which a
link of the same call and role was made at or after its voiding was *replaced*
(refused as :class:`LinkReplaced`, and no survey for that browser), not ended.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.errors import (
    BadRequest,
    LinkExpired,
    LinkReplaced,
    LinkUsed,
    NotFound,
)
from controlplane.base.json_body import json_body
from controlplane.base.rendering import render
from controlplane.base.settings import CONFIG
from controlplane.security import cookies
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import join_links

log = structlog.get_logger()

ROLES = ("citizen", "interpreter")
SESSION_COOKIE = "bb_call"
#: How long a browser session may rejoin its room after the link was opened.
SESSION_LIFETIME = timedelta(hours=12)
#: How long after the call ended its session may still fill in the survey.
SURVEY_WINDOW = timedelta(hours=24)
#: Where the landing page sends the browser after a successful exchange.
NEXT_PAGE = "/gesprek/apparaat"
_TOKEN_BYTES = 24  # 192 bits


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What a join link (and the session it became) grants; no secrets."""

    link_id: int
    request_id: int | None
    room_id: str
    role: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    voided_at: datetime | None

    @property
    def ended(self) -> bool:
        """The call is over: neither the link nor its session joins again."""
        return self.voided_at is not None


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _info(row: Any) -> LinkInfo:
    return LinkInfo(
        link_id=row.id,
        request_id=row.request_id,
        room_id=row.room_id,
        role=row.role,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        voided_at=row.voided_at,
    )


async def _was_replaced(conn: AsyncConnection, row: Any) -> bool:
    """Voided by :func:`replace_link` rather than by the end of the call."""
    if row.voided_at is None:
        return False
    newer = await conn.execute(
        sa.select(join_links.c.id)
        .where(
            join_links.c.room_id == row.room_id,
            join_links.c.role == row.role,
            join_links.c.id > row.id,
            join_links.c.created_at >= row.voided_at,
        )
        .limit(1)
    )
    return newer.first() is not None


def link_url(public_url: str, token: str) -> str:
    """The address to send: the token in the fragment, never in the query."""
    return f"{public_url.rstrip('/')}/gesprek#t={token}"


async def create_link(
    db: Database,
    *,
    request_id: int | None,
    room_id: str,
    role: str,
    ttl: timedelta,
    replace: bool = False,
) -> str:
    """A new single-use token for ``room_id`` (returned once, stored as a hash);
    with ``replace``, it replaces the role's earlier links of the room."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} must be one of {ROLES}")
    if ttl <= timedelta(0):
        raise ValueError("ttl must be positive")
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    now = datetime.now(UTC)
    async with db.write() as conn:
        if replace:
            # the role's earlier links and their sessions stop, as of this link
            await conn.execute(
                join_links.update()
                .where(
                    join_links.c.room_id == room_id,
                    join_links.c.role == role,
                    join_links.c.voided_at.is_(None),
                )
                .values(voided_at=now)
            )
        await conn.execute(
            join_links.insert().values(
                token_hash=_hash(token),
                request_id=request_id,
                room_id=room_id,
                role=role,
                created_at=now,
                expires_at=now + ttl,
            )
        )
    log.info("join_link_created", room_id=room_id, role=role, replace=replace)
    return token


async def _row_by(conn: AsyncConnection, column: sa.Column[Any], value: str) -> Any:
    return (await conn.execute(sa.select(join_links).where(column == value))).first()


async def exchange(db: Database, token: str) -> tuple[str, LinkInfo]:
    """Use ``token`` once: returns a new browser-session secret and the link.

    Raises :class:`NotFound` for an unknown token, :class:`LinkUsed` when it was
    opened before (here or anywhere), :class:`LinkExpired` when it is too old or
    its call ended.
    """
    token_hash = _hash(token)
    session = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    async with db.write() as conn:
        result = await conn.execute(
            join_links.update()
            .where(
                join_links.c.token_hash == token_hash,
                join_links.c.used_at.is_(None),
                join_links.c.voided_at.is_(None),
                join_links.c.expires_at > now,
            )
            .values(used_at=now, browser_session_hash=_hash(session))
        )
        row = await _row_by(conn, join_links.c.token_hash, token_hash)
        replaced = row is not None and await _was_replaced(conn, row)
    if row is None:
        raise NotFound("join_link_unknown")
    if result.rowcount != 1:
        _refuse(row, replaced)
    log.info("join_link_opened", room_id=row.room_id, role=row.role)
    return session, _info(row)


def _refuse(row: Any, replaced: bool) -> NoReturn:
    """Raise why a link that exists cannot be exchanged."""
    if replaced:
        raise LinkReplaced("join_link_replaced")
    if row.voided_at is not None:
        raise LinkExpired("join_link_ended")
    if row.used_at is not None:
        raise LinkUsed("join_link_used")
    raise LinkExpired("join_link_expired")


async def _by_session(db: Database, session_token: str) -> LinkInfo:
    async with db.read() as conn:
        row = await _row_by(
            conn, join_links.c.browser_session_hash, _hash(session_token)
        )
        replaced = row is not None and await _was_replaced(conn, row)
    if row is None:
        raise NotFound("join_session_unknown")
    if replaced:
        # another device has the call now: no call, no survey for this one
        raise LinkReplaced("join_link_replaced")
    return _info(row)


async def resume(db: Database, session_token: str) -> LinkInfo:
    """The link a browser session belongs to, while it may still join its room."""
    info = await _by_session(db, session_token)
    if info.ended:
        raise LinkExpired("join_link_ended")
    assert info.used_at is not None  # noqa: S101 (a session exists only once used)
    if datetime.now(UTC) > info.used_at + SESSION_LIFETIME:
        raise LinkExpired("join_link_expired")
    return info


async def survey_session(db: Database, session_token: str) -> LinkInfo:
    """The link of a browser session whose call is live or ended at most
    :data:`SURVEY_WINDOW` ago: what the citizen survey needs."""
    info = await _by_session(db, session_token)
    now = datetime.now(UTC)
    assert info.used_at is not None  # noqa: S101 (a session exists only once used)
    ended = info.voided_at or info.used_at + SESSION_LIFETIME
    if now > ended + SURVEY_WINDOW:
        raise LinkExpired("join_link_expired")
    return info


async def void_room(db: Database, room_id: str) -> int:
    """End every link and session of ``room_id``; returns how many were voided."""
    async with db.write() as conn:
        result = await conn.execute(
            join_links.update()
            .where(join_links.c.room_id == room_id, join_links.c.voided_at.is_(None))
            .values(voided_at=datetime.now(UTC))
        )
    log.info("join_links_voided", room_id=room_id, count=result.rowcount)
    return int(result.rowcount)


# HTTP


def setup(app: web.Application) -> None:
    """Register the landing page and the exchange endpoint."""
    app.router.add_get("/gesprek", show_landing, name="join_landing")
    app.router.add_post("/gesprek/openen", open_link, name="join_open")


def _session_cookie(request: web.Request) -> str | None:
    return cookies.get_cookie(request, request.app[CONFIG], SESSION_COOKIE)


async def current_call_session(request: web.Request) -> LinkInfo | None:
    """The call this browser may (re)join, from its ``bb_call`` cookie, or ``None``
    (no cookie, unknown session, call ended or session too old)."""
    token = _session_cookie(request)
    if not token:
        return None
    try:
        return await resume(request.app[DB], token)
    except (NotFound, LinkExpired):
        return None


async def current_survey_session(request: web.Request) -> LinkInfo | None:
    """Like :func:`current_call_session`, but also for a call that ended recently;
    raises :class:`LinkReplaced` for a browser whose link a newer one replaced, so
    its pages say so."""
    token = _session_cookie(request)
    if not token:
        return None
    try:
        return await survey_session(request.app[DB], token)
    except LinkReplaced:
        raise
    except (NotFound, LinkExpired):
        return None


async def show_landing(request: web.Request) -> web.Response:
    session = await current_call_session(request)
    response = render(
        request, "join/landing.html", {"has_session": session is not None}
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def _token_from(request: web.Request) -> str:
    token = (await json_body(request)).get("token")
    if not isinstance(token, str) or not 16 <= len(token) <= 128:
        raise BadRequest("join_link_malformed")
    return token


async def open_link(request: web.Request) -> web.Response:
    """Exchange the link's token for this browser's call session (JSON)."""
    token = await _token_from(request)
    db = request.app[DB]
    try:
        session, _info = await exchange(db, token)
    except LinkUsed:
        # the browser that opened it before may carry on
        held = await current_call_session(request)
        async with db.read() as conn:
            row = await _row_by(conn, join_links.c.token_hash, _hash(token))
        if held is None or row is None or held.link_id != row.id:
            raise
        return _next_response(request, None)
    return _next_response(request, session)


def _next_response(request: web.Request, session: str | None) -> web.Response:
    """``{"next": ...}``; sets the session cookie when a new session was made."""
    response = web.json_response(
        {"next": NEXT_PAGE}, headers={"Cache-Control": "no-store"}
    )
    if session is not None:
        cookies.set_cookie(
            response,
            request.app[CONFIG],
            SESSION_COOKIE,
            session,
            max_age=int((SESSION_LIFETIME + SURVEY_WINDOW).total_seconds()),
        )
    return response
