"""The first sign-in's extra steps: choosing an own password, then setting up the
authenticator app (TOTP) from a QR code.
"""

from __future__ import annotations

import segno
import sqlalchemy as sa
import structlog
from aiohttp import web

from controlplane.base.client import client_ip
from controlplane.base.metrics import METRICS
from controlplane.requests import DESK
from controlplane.security.ratelimit import LIMITS
from controlplane.security.secret_box import seal_totp_secret
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.staff import auth
from controlplane.staff.login_steps import (
    at_step,
    audit_user,
    read_form,
    redirect,
    rotate,
    signed_in,
    stage,
    step_form,
    step_url,
    totp_secret,
    user_row,
)
from controlplane.staff.users import check_new_password
from controlplane.storage.database import DB
from controlplane.storage.schema import users

log = structlog.get_logger()


# first login: choose a password

_MISMATCH = "staff_auth_error_password_mismatch"


async def password_page(request: web.Request) -> web.Response:
    _session, _user_row, next_path = await at_step(request, "/staff/password")
    return step_form(request, "password", next_path)


async def change_password(request: web.Request) -> web.Response:
    form = await read_form(request)
    session, user, next_path = await at_step(request, "/staff/password", form)
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
        return step_form(request, "password", next_path, errors=errors, status=422)
    new_hash = await auth.hash_password(new)
    async with request.app[DB].write() as conn:
        await conn.execute(
            sa.update(users)
            .where(users.c.id == user.id)
            .values(password_hash=new_hash, must_change_password=False)
        )
        await audit_user(conn, "staff_password_changed", user)
        token = await rotate(request, conn, session, user.id, mfa_done=False)
        user = await user_row(conn, user.id)
    log.info("staff_password_changed", user_id=user.id)
    return redirect(request, step_url(stage(user), next_path), token)


# first login: set up the authenticator


async def enrol_page(request: web.Request) -> web.Response:
    _session, user, next_path = await at_step(request, "/staff/enrol")
    secret = totp_secret(request, user)
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
    return step_form(
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
    await request.app[LIMITS].login_per_ip.hit(client_ip(request))
    form = await read_form(request)
    session, user, next_path = await at_step(request, "/staff/enrol", form)
    secret = totp_secret(request, user)
    if secret is None:  # the page was not shown, or shows a new secret now
        raise web.HTTPSeeOther(step_url("/staff/enrol", next_path))
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
        await audit_user(conn, "staff_totp_enrolled", user)
        token = await signed_in(request, conn, session, user)
    return redirect(request, next_path, token)
