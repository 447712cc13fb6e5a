"""The second factor: the 6-digit TOTP code that turns a pending session into a
full one; a code is accepted once, and failures count towards the lock.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web

from controlplane.base.client import client_ip
from controlplane.base.metrics import METRICS
from controlplane.security import audit
from controlplane.security.ratelimit import LIMITS
from controlplane.staff import auth
from controlplane.staff.lockout import claim, count_failure
from controlplane.staff.login_steps import (
    at_step,
    read_form,
    redirect,
    signed_in,
    step_form,
    totp_secret,
)
from controlplane.storage.database import DB
from controlplane.storage.schema import users

log = structlog.get_logger()


async def mfa_page(request: web.Request) -> web.Response:
    _session, _user_row, next_path = await at_step(request, "/staff/mfa")
    return step_form(request, "mfa", next_path, message=None)


async def mfa(request: web.Request) -> web.Response:
    await request.app[LIMITS].login_per_ip.hit(client_ip(request))
    form = await read_form(request)
    session, user, next_path = await at_step(request, "/staff/mfa", form)
    secret = totp_secret(request, user)
    if secret is None:
        return await _mfa_unreadable(request, user, next_path)
    # claimed before the check, so concurrent guesses cannot pass the lock
    attempt = await claim(request, user.id)
    if attempt.refused:
        request.app[METRICS].logins.labels("locked").inc()
        return step_form(
            request,
            "mfa",
            next_path,
            message=("staff_auth_locked", attempt.refused_minutes),
            status=429,
        )
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
            token = await signed_in(request, conn, session, user)
        else:
            await count_failure(conn, attempt, user, "staff_mfa_failed", "wrong_code")
    if token is None:
        return _mfa_failed(request, next_path)
    return redirect(request, next_path, token)


def _mfa_failed(request: web.Request, next_path: str) -> web.Response:
    request.app[METRICS].logins.labels("mfa_failed").inc()
    return step_form(
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
