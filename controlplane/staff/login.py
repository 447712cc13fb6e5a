"""Staff sign-in: password, TOTP second factor, first-login set-up, logout.

Steps: ``/staff/login`` (password) gives a *pending* session; then
``/staff/password`` (first login: choose a password), ``/staff/enrol`` (first
login: set up the authenticator) or ``/staff/mfa`` (the 6-digit code) make it a
full session. The session token is replaced at every step.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import segno
import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.client import client_ip
from controlplane.base.metrics import METRICS
from controlplane.base.rendering import render
from controlplane.base.settings import CONFIG
from controlplane.requests import DESK
from controlplane.security import audit
from controlplane.security.ratelimit import LIMITS
from controlplane.security.secret_box import (
    SecretUnreadable,
    open_totp_secret,
    seal_totp_secret,
)
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.staff import auth
from controlplane.staff.users import MAX_PASSWORD, check_new_password
from controlplane.storage.database import DB
from controlplane.storage.schema import users

log = structlog.get_logger()

#: Longest lock after repeated failures.
MAX_LOCK_MINUTES = 60


def setup(app: web.Application) -> None:
    """Register this module's routes and background tasks on ``app``."""
    app.router.add_get("/staff/login", login_page)
    app.router.add_post("/staff/login", login)
    app.router.add_get("/staff/password", password_page)
    app.router.add_post("/staff/password", change_password)
    app.router.add_get("/staff/enrol", enrol_page)
    app.router.add_post("/staff/enrol", enrol)
    app.router.add_get("/staff/mfa", mfa_page)
    app.router.add_post("/staff/mfa", mfa)
    app.router.add_post("/staff/logout", logout)


# helpers


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _next(request: web.Request, form: dict[str, str] | None = None) -> str:
    value = (form or {}).get("next") or request.query.get("next")
    return auth.safe_next(value) or "/staff"


def _step_url(path: str, next_path: str) -> str:
    if next_path == "/staff":
        return path
    return f"{path}?next={quote(next_path, safe='/')}"


async def _user(conn: AsyncConnection, user_id: int) -> Any:
    return (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()


def _locked_minutes(locked_until: datetime | None) -> int:
    if locked_until is None:
        return 0
    left = (locked_until - datetime.now(UTC)).total_seconds()
    return max(1, -(-int(left) // 60)) if left > 0 else 0


def _lock_after(failures: int, threshold: int) -> datetime | None:
    """1, 2, 4 … minutes (capped) from the ``threshold``-th failure on."""
    if failures < threshold:
        return None
    minutes = min(MAX_LOCK_MINUTES, 2 ** min(failures - threshold, 10))
    return datetime.now(UTC) + timedelta(minutes=minutes)


async def _count_failure(
    conn: AsyncConnection, request: web.Request, user: Any, action: str, reason: str
) -> None:
    threshold = request.app[CONFIG].security.lockout_threshold
    # increment in the database: concurrent failures each count
    await conn.execute(
        sa.update(users)
        .where(users.c.id == user.id)
        .values(failed_logins=users.c.failed_logins + 1)
    )
    failures = (
        await conn.execute(
            sa.select(users.c.failed_logins).where(users.c.id == user.id)
        )
    ).scalar_one()
    locked_until = _lock_after(failures, threshold)
    if locked_until is not None:
        await conn.execute(
            sa.update(users)
            .where(users.c.id == user.id)
            .values(locked_until=locked_until)
        )
    details: dict[str, Any] = {"reason": reason}
    if locked_until is not None:
        details["locked_minutes"] = _locked_minutes(locked_until)
    await audit.record(conn, action, user_id=user.id, username=user.username, **details)
    log.info(action, user_id=user.id, reason=reason, locked=locked_until is not None)


def _stage(user: Any) -> str:
    """Where a pending session goes next."""
    if user.must_change_password:
        return "/staff/password"
    if not user.totp_confirmed:
        return "/staff/enrol"
    return "/staff/mfa"


async def _rotate(
    request: web.Request,
    conn: AsyncConnection,
    old: auth.Session | None,
    user_id: int,
    *,
    mfa_done: bool,
) -> str:
    if old is not None:
        await auth.end_session(conn, old.id_hash)
    return await auth.start_session(
        conn, request.app[CONFIG], user_id, mfa_done=mfa_done
    )


def _redirect(
    request: web.Request, location: str, token: str | None = None
) -> web.Response:
    response = web.Response(status=303, headers={"Location": location})
    if token is not None:
        auth.set_session_cookie(response, request.app[CONFIG], token)
    auth.forget_current(request)
    return response


async def _pending(request: web.Request) -> tuple[auth.Session, Any]:
    """The pending session and its user row; otherwise back to the login."""
    session = await auth.current_session(request)
    if session is None:
        raise web.HTTPSeeOther(auth.login_url(_next(request)))
    if session.mfa_done:
        raise web.HTTPSeeOther(_next(request))
    async with request.app[DB].read() as conn:
        user = await _user(conn, session.user.id)
    return session, user


async def _at_step(
    request: web.Request, step: str, form: dict[str, str] | None = None
) -> tuple[auth.Session, Any, str]:
    """The pending session, its user row and the ``next`` path, if the user's
    next step is ``step``; otherwise on to the step that is due."""
    session, user = await _pending(request)
    next_path = _next(request, form)
    if _stage(user) != step:
        raise web.HTTPSeeOther(_step_url(_stage(user), next_path))
    return session, user, next_path


def _step_form(
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


async def _audit(conn: AsyncConnection, action: str, user: Any) -> None:
    await audit.record(conn, action, user_id=user.id, username=user.username)


def _totp_secret(request: web.Request, user: Any) -> str | None:
    """The user's TOTP secret in clear; ``None`` when there is none or it does
    not decrypt (``secret_key`` changed or wrong), which is logged."""
    if not user.totp_secret:
        return None
    try:
        return open_totp_secret(request.app[SECRET_KEY], user.totp_secret)
    except SecretUnreadable:
        log.error("staff_totp_secret_unreadable", user_id=user.id)
        return None


# password


async def login_page(request: web.Request) -> web.Response:
    if await auth.current_staff(request) is not None:
        raise web.HTTPSeeOther(_next(request))
    return _login_form(request, _next(request))


def _login_form(
    request: web.Request,
    next_path: str,
    *,
    username: str = "",
    errors: dict[str, str] | None = None,
    message: tuple[str, int] | None = None,
    status: int = 200,
) -> web.Response:
    return _step_form(
        request,
        "login",
        next_path,
        errors=errors,
        status=status,
        username=username,
        message=message,
    )


async def login(request: web.Request) -> web.Response:
    request.app[LIMITS].login_per_ip.hit(client_ip(request))
    form = await _form(request)
    next_path = _next(request, form)
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
    if user is not None and (locked := _locked_minutes(user.locked_until)):
        request.app[METRICS].logins.labels("locked").inc()
        log.info("staff_login_refused", user_id=user.id, reason="locked")
        return _login_form(
            request,
            next_path,
            username=username,
            message=("staff_auth_locked", locked),
            status=429,
        )
    stored = user.password_hash if user is not None else None
    ok, new_hash = await auth.verify_password(stored, password)
    if not ok or user is None:
        await _password_failed(request, user)
        return _login_form(
            request,
            next_path,
            username=username,
            errors={"password": _WRONG_CREDENTIALS},
            status=401,
        )
    return await _password_accepted(request, user, new_hash, next_path)


_WRONG_CREDENTIALS = "staff_auth_error_credentials"


def _missing(form: dict[str, str], names: tuple[str, ...]) -> dict[str, str]:
    return {
        name: f"staff_auth_error_{name}_missing"
        for name in names
        if not form.get(name, "").strip()
    }


async def _password_failed(request: web.Request, user: Any) -> None:
    async with request.app[DB].write() as conn:
        if user is None:
            await audit.record(conn, "staff_login_failed", reason="unknown_user")
            log.info("staff_login_failed", user_id=None, reason="unknown_user")
        else:
            await _count_failure(
                conn, request, user, "staff_login_failed", "wrong_password"
            )
    request.app[METRICS].logins.labels("failed").inc()


async def _password_accepted(
    request: web.Request, user: Any, new_hash: str | None, next_path: str
) -> web.Response:
    old = await auth.current_session(request)
    async with request.app[DB].write() as conn:
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
        if new_hash is not None:
            values["password_hash"] = new_hash
        await conn.execute(
            sa.update(users).where(users.c.id == user.id).values(**values)
        )
        await auth.purge_expired_sessions(conn, request.app[CONFIG])
        token = await _rotate(request, conn, old, user.id, mfa_done=False)
    request.app[METRICS].logins.labels("password_ok").inc()
    log.info("staff_password_accepted", user_id=user.id)
    return _redirect(request, _step_url(_stage(user), next_path), token)


# first login: choose a password

_MISMATCH = "staff_auth_error_password_mismatch"


async def password_page(request: web.Request) -> web.Response:
    _session, _user_row, next_path = await _at_step(request, "/staff/password")
    return _step_form(request, "password", next_path)


async def change_password(request: web.Request) -> web.Response:
    form = await _form(request)
    session, user, next_path = await _at_step(request, "/staff/password", form)
    new = form.get("new_password", "")
    errors: dict[str, str] = {}
    problem = check_new_password(new, username=user.username)
    if problem is None and (await auth.verify_password(user.password_hash, new))[0]:
        problem = "staff_auth_error_password_same"
    if problem is not None:
        errors["new_password"] = problem
    elif form.get("confirm_password", "") != new:
        errors["confirm_password"] = _MISMATCH
    if errors:
        return _step_form(request, "password", next_path, errors=errors, status=422)
    new_hash = await auth.hash_password(new)
    async with request.app[DB].write() as conn:
        await conn.execute(
            sa.update(users)
            .where(users.c.id == user.id)
            .values(password_hash=new_hash, must_change_password=False)
        )
        await _audit(conn, "staff_password_changed", user)
        token = await _rotate(request, conn, session, user.id, mfa_done=False)
        user = await _user(conn, user.id)
    log.info("staff_password_changed", user_id=user.id)
    return _redirect(request, _step_url(_stage(user), next_path), token)


# first login: set up the authenticator


async def enrol_page(request: web.Request) -> web.Response:
    _session, user, next_path = await _at_step(request, "/staff/enrol")
    secret = _totp_secret(request, user)
    if secret is None:
        # also replaces an unreadable one: nothing was confirmed with it yet
        secret = auth.new_totp_secret()
        sealed = seal_totp_secret(request.app[SECRET_KEY], secret)
        async with request.app[DB].write() as conn:
            await conn.execute(
                sa.update(users)
                .where(users.c.id == user.id, users.c.totp_confirmed.is_(False))
                .values(totp_secret=sealed)
            )
    return _enrol_form(request, next_path, user.username, secret)


def _enrol_form(
    request: web.Request,
    next_path: str,
    username: str,
    secret: str,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    uri = auth.provisioning_uri(secret, username, request.app[DESK].current.name)
    qr = segno.make(uri, error="m")
    return _step_form(
        request,
        "enrol",
        next_path,
        errors=errors,
        status=status,
        qr_data_uri=qr.svg_data_uri(scale=5, border=4),
        secret_groups=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        account=username,
    )


async def enrol(request: web.Request) -> web.Response:
    request.app[LIMITS].login_per_ip.hit(client_ip(request))
    form = await _form(request)
    session, user, next_path = await _at_step(request, "/staff/enrol", form)
    secret = _totp_secret(request, user)
    if secret is None:  # the page was not shown, or shows a new secret now
        raise web.HTTPSeeOther(_step_url("/staff/enrol", next_path))
    step = auth.match_totp(secret, form.get("totp_code", ""), 0)
    if step is None:
        request.app[METRICS].logins.labels("mfa_failed").inc()
        return _enrol_form(
            request,
            next_path,
            user.username,
            secret,
            {"totp_code": "staff_auth_error_code"},
            status=422,
        )
    async with request.app[DB].write() as conn:
        await conn.execute(
            sa.update(users)
            .where(users.c.id == user.id)
            .values(
                totp_confirmed=True,
                totp_last_step=step,
                failed_logins=0,
                locked_until=None,
            )
        )
        await _audit(conn, "staff_totp_enrolled", user)
        token = await _signed_in(request, conn, session, user)
    return _redirect(request, next_path, token)


async def _signed_in(
    request: web.Request, conn: AsyncConnection, session: auth.Session, user: Any
) -> str:
    await _audit(conn, "staff_login_succeeded", user)
    request.app[METRICS].logins.labels("succeeded").inc()
    log.info("staff_login_succeeded", user_id=user.id)
    return await _rotate(request, conn, session, user.id, mfa_done=True)


# second factor


async def mfa_page(request: web.Request) -> web.Response:
    _session, _user_row, next_path = await _at_step(request, "/staff/mfa")
    return _step_form(request, "mfa", next_path, message=None)


async def mfa(request: web.Request) -> web.Response:
    request.app[LIMITS].login_per_ip.hit(client_ip(request))
    form = await _form(request)
    session, user, next_path = await _at_step(request, "/staff/mfa", form)
    locked = _locked_minutes(user.locked_until)
    if locked:
        request.app[METRICS].logins.labels("locked").inc()
        return _step_form(
            request, "mfa", next_path, message=("staff_auth_locked", locked), status=429
        )
    secret = _totp_secret(request, user)
    if secret is None:
        return await _mfa_unreadable(request, user, next_path)
    step = auth.match_totp(secret, form.get("totp_code", ""), user.totp_last_step)
    token: str | None = None
    async with request.app[DB].write() as conn:
        # the step moves forward at most once: a replayed code matches no row
        if (
            step is not None
            and (
                await conn.execute(
                    sa.update(users)
                    .where(users.c.id == user.id, users.c.totp_last_step < step)
                    .values(totp_last_step=step, failed_logins=0, locked_until=None)
                )
            ).rowcount
            == 1
        ):
            token = await _signed_in(request, conn, session, user)
        else:
            await _count_failure(conn, request, user, "staff_mfa_failed", "wrong_code")
    if token is None:
        return _mfa_failed(request, next_path)
    return _redirect(request, next_path, token)


def _mfa_failed(request: web.Request, next_path: str) -> web.Response:
    request.app[METRICS].logins.labels("mfa_failed").inc()
    return _step_form(
        request,
        "mfa",
        next_path,
        errors={"totp_code": "staff_auth_error_code"},
        status=401,
        message=None,
    )


async def _mfa_unreadable(
    request: web.Request, user: Any, next_path: str
) -> web.Response:
    """No code can match: fail as a wrong code would, audited, but without
    counting towards a lock (not the user's doing; an admin fixes ``secret_key``
    or resets the account)."""
    async with request.app[DB].write() as conn:
        await audit.record(
            conn,
            "staff_mfa_failed",
            user_id=user.id,
            username=user.username,
            reason="secret_unreadable",
        )
    return _mfa_failed(request, next_path)


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
    response = _redirect(request, "/staff/login")
    auth.clear_session_cookie(response, request.app[CONFIG])
    return response
