"""Staff sign-in: password, TOTP second factor, first-login set-up, logout.

Steps: ``/staff/login`` (password) gives a *pending* session; then
``/staff/password`` (first login: choose a password), ``/staff/enrol`` (first
login: set up the authenticator) or ``/staff/mfa`` (the 6-digit code) make it a
full session. The session token is replaced at every step. This module holds the
password step and logout; :mod:`~controlplane.staff.first_login`,
:mod:`~controlplane.staff.mfa` the others, on :mod:`~controlplane.staff.login_steps`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web

from controlplane.base.client import client_ip
from controlplane.base.metrics import METRICS
from controlplane.base.settings import CONFIG
from controlplane.security import audit
from controlplane.security.ratelimit import LIMITS
from controlplane.staff import auth
from controlplane.staff.first_login import (
    change_password,
    enrol,
    enrol_page,
    password_page,
)
from controlplane.staff.lockout import Attempt, claim, count_failure, give_back
from controlplane.staff.login_steps import (
    next_of,
    read_form,
    redirect,
    rotate,
    stage,
    step_form,
    step_url,
)
from controlplane.staff.mfa import mfa, mfa_page
from controlplane.staff.users import MAX_PASSWORD
from controlplane.storage.database import DB
from controlplane.storage.schema import users

log = structlog.get_logger()


def setup(app: web.Application) -> None:
    """Register the sign-in steps in their order, and logout."""
    app.router.add_get("/staff/login", login_page)
    app.router.add_post("/staff/login", login)
    app.router.add_get("/staff/password", password_page)
    app.router.add_post("/staff/password", change_password)
    app.router.add_get("/staff/enrol", enrol_page)
    app.router.add_post("/staff/enrol", enrol)
    app.router.add_get("/staff/mfa", mfa_page)
    app.router.add_post("/staff/mfa", mfa)
    app.router.add_post("/staff/logout", logout)


# password


async def login_page(request: web.Request) -> web.Response:
    if await auth.current_staff(request) is not None:
        raise web.HTTPSeeOther(next_of(request))
    return _login_form(request, next_of(request))


def _login_form(
    request: web.Request,
    next_path: str,
    *,
    username: str = "",
    errors: dict[str, str] | None = None,
    message: tuple[str, int] | None = None,
    status: int = 200,
) -> web.Response:
    return step_form(
        request,
        "login",
        next_path,
        errors=errors,
        status=status,
        username=username,
        message=message,
    )


async def login(request: web.Request) -> web.Response:
    await request.app[LIMITS].login_per_ip.hit(client_ip(request))
    form = await read_form(request)
    next_path = next_of(request, form)
    username = form.get("username", "").strip().lower()
    password = form.get("password", "")
    errors = _missing(form, ("username", "password"))
    # no account has such a name (and PostgreSQL cannot compare text with NUL)
    if len(username) > 64 or "\x00" in username or len(password) > MAX_PASSWORD:
        errors["password"] = _WRONG_CREDENTIALS
    if errors:
        return _login_form(
            request, next_path, username=username[:64], errors=errors, status=422
        )
    async with request.app[DB].read() as conn:
        user = (
            await conn.execute(
                sa.select(users).where(
                    users.c.username == username, users.c.active.is_(True)
                )
            )
        ).first()
    if user is None:
        await auth.verify_password(None, password)
        await _unknown_user(request)
        return _wrong_password(request, next_path, username)
    return await _check_password(request, user, password, next_path)


async def _check_password(
    request: web.Request, user: Any, password: str, next_path: str
) -> web.Response:
    """Claim an attempt on ``user``'s account (so concurrent guesses cannot pass
    the lock), then check ``password``."""
    username = user.username
    attempt = await claim(request, user.id)
    if attempt.refused:
        request.app[METRICS].logins.labels("locked").inc()
        log.info("staff_login_refused", user_id=user.id, reason="locked")
        return _login_form(
            request,
            next_path,
            username=username,
            message=("staff_auth_locked", attempt.refused_minutes),
            status=429,
        )
    ok, new_hash = await auth.verify_password(user.password_hash, password)
    if not ok:
        await _password_failed(request, user, attempt)
        return _wrong_password(request, next_path, username)
    return await _password_accepted(request, user, attempt, new_hash, next_path)


def _wrong_password(
    request: web.Request, next_path: str, username: str
) -> web.Response:
    return _login_form(
        request,
        next_path,
        username=username,
        errors={"password": _WRONG_CREDENTIALS},
        status=401,
    )


_WRONG_CREDENTIALS = "staff_auth_error_credentials"


def _missing(form: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {
        name: f"staff_auth_error_{name}_missing"
        for name in names
        if not form.get(name, "").strip()
    }


async def _unknown_user(request: web.Request) -> None:
    async with request.app[DB].write() as conn:
        await audit.record(conn, "staff_login_failed", reason="unknown_user")
    log.info("staff_login_failed", user_id=None, reason="unknown_user")
    request.app[METRICS].logins.labels("failed").inc()


async def _password_failed(request: web.Request, user: Any, attempt: Attempt) -> None:
    async with request.app[DB].write() as conn:
        await count_failure(conn, attempt, user, "staff_login_failed", "wrong_password")
    request.app[METRICS].logins.labels("failed").inc()


async def _password_accepted(
    request: web.Request,
    user: Any,
    attempt: Attempt,
    new_hash: str | None,
    next_path: str,
) -> web.Response:
    """The password step passed; its failures only clear with the second factor,
    so knowing the password does not reset the lock on guessing codes."""
    old = await auth.current_session(request)
    async with request.app[DB].write() as conn:
        await give_back(conn, attempt)
        if new_hash is not None:
            await conn.execute(
                sa.update(users)
                .where(users.c.id == user.id)
                .values(password_hash=new_hash)
            )
        await auth.purge_expired_sessions(conn, request.app[CONFIG])
        token = await rotate(request, conn, old, user.id, mfa_done=False)
    request.app[METRICS].logins.labels("password_ok").inc()
    log.info("staff_password_accepted", user_id=user.id)
    return redirect(request, step_url(stage(user), next_path), token)


# logout


async def logout(request: web.Request) -> web.Response:
    session = await auth.current_session(request)
    if session is not None:
        async with request.app[DB].write() as conn:
            await auth.end_session(conn, session.id_hash)
            await audit.record(
                conn,
                "staff_logged_out",
                user_id=session.user.id,
                username=session.user.username,
            )
        log.info("staff_logged_out", user_id=session.user.id)
    response = redirect(request, "/staff/login")
    auth.clear_session_cookie(response, request.app[CONFIG])
    return response
