"""The steps of signing in, shared: the pending session between password and
second factor, the step that is due, moving on with a fresh session token, and
the step pages' form.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.metrics import METRICS
from controlplane.base.rendering import render
from controlplane.base.settings import CONFIG
from controlplane.security import audit
from controlplane.security.secret_box import SecretUnreadable, open_totp_secret
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.staff import auth
from controlplane.storage.database import DB
from controlplane.storage.schema import users

log = structlog.get_logger()


async def read_form(request: web.Request) -> dict[str, str]:
    """The form's text fields."""
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def next_of(request: web.Request, form: dict[str, str] | None = None) -> str:
    """Where to go after signing in: a safe ``next`` from the form or query."""
    value = (form or {}).get("next") or request.query.get("next")
    return auth.safe_next(value) or "/staff"


def step_url(path: str, next_path: str) -> str:
    """``path`` carrying ``next_path`` along unless it is the default."""
    if next_path == "/staff":
        return path
    return f"{path}?next={quote(next_path, safe='/')}"


async def user_row(conn: AsyncConnection, user_id: int) -> Any:
    """The ``users`` row of ``user_id``."""
    return (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()


def stage(user: Any) -> str:
    """Where a pending session goes next."""
    if user.must_change_password:
        return "/staff/password"
    if not user.totp_confirmed:
        return "/staff/enrol"
    return "/staff/mfa"


async def rotate(
    request: web.Request,
    conn: AsyncConnection,
    old: auth.Session | None,
    user_id: int,
    *,
    mfa_done: bool,
) -> str:
    """End ``old`` (if any) and start a new session token for ``user_id``."""
    if old is not None:
        await auth.end_session(conn, old.id_hash)
    return await auth.start_session(
        conn, request.app[CONFIG], user_id, mfa_done=mfa_done
    )


def redirect(
    request: web.Request, location: str, token: str | None = None
) -> web.Response:
    """A 303 to ``location``, setting the session cookie to ``token`` if given."""
    response = web.Response(status=303, headers={"Location": location})
    if token is not None:
        auth.set_session_cookie(response, request.app[CONFIG], token)
    auth.forget_current(request)
    return response


async def pending(request: web.Request) -> tuple[auth.Session, Any]:
    """The pending session and its user row; otherwise back to the login."""
    session = await auth.current_session(request)
    if session is None:
        raise web.HTTPSeeOther(auth.login_url(next_of(request)))
    if session.mfa_done:
        raise web.HTTPSeeOther(next_of(request))
    async with request.app[DB].read() as conn:
        user = await user_row(conn, session.user.id)
    return session, user


async def at_step(
    request: web.Request, step: str, form: dict[str, str] | None = None
) -> tuple[auth.Session, Any, str]:
    """The pending session, its user row and the ``next`` path, if the user's
    next step is ``step``; otherwise on to the step that is due."""
    session, user = await pending(request)
    next_path = next_of(request, form)
    if stage(user) != step:
        raise web.HTTPSeeOther(step_url(stage(user), next_path))
    return session, user, next_path


def step_form(
    request: web.Request,
    template: str,
    next_path: str,
    *,
    errors: dict[str, str] | None = None,
    status: int = 200,
    **context: Any,
) -> web.Response:
    """A sign-in step's page; ``context`` adds what its template needs."""
    return render(
        request,
        f"staff/auth/{template}.html",
        {"next": next_path, "errors": errors or {}, **context},
        status=status,
    )


async def audit_user(conn: AsyncConnection, action: str, user: Any) -> None:
    """Audit ``action`` by ``user``."""
    await audit.record(conn, action, user_id=user.id, username=user.username)


def totp_secret(request: web.Request, user: Any) -> str | None:
    """The user's TOTP secret in clear; ``None`` when there is none or it does
    not decrypt (``secret_key`` changed or wrong), which is logged."""
    if not user.totp_secret:
        return None
    try:
        return open_totp_secret(request.app[SECRET_KEY], user.totp_secret)
    except SecretUnreadable:
        log.error("staff_totp_secret_unreadable", user_id=user.id)
        return None


async def signed_in(
    request: web.Request, conn: AsyncConnection, session: auth.Session, user: Any
) -> str:
    """Both factors passed: audit, count and start the full session."""
    await audit_user(conn, "staff_login_succeeded", user)
    request.app[METRICS].logins.labels("succeeded").inc()
    log.info("staff_login_succeeded", user_id=user.id)
    return await rotate(request, conn, session, user.id, mfa_done=True)
