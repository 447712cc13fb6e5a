"""Admin pages for staff accounts: the list and a new account, one account's
page, and changing its role, deactivating, resetting or unlocking it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from controlplane.base.errors import NotFound
from controlplane.base.rendering import render
from controlplane.staff import users
from controlplane.staff.admin import admin_form, see_other
from controlplane.staff.auth import ROLES, StaffUser, require_staff
from controlplane.storage.database import DB, Database

log = structlog.get_logger()


def setup(app: web.Application) -> None:
    """Register the account pages."""
    user_path = "/staff/admin/users/{username:[a-z0-9._-]{3,64}}"
    app.router.add_get("/staff/admin", users_page)
    app.router.add_post("/staff/admin/users", create_user)
    app.router.add_get(user_path, user_page)
    app.router.add_post(user_path + "/role", change_role)
    app.router.add_post(user_path + "/active", change_active)
    app.router.add_post(user_path + "/reset", reset_user)
    app.router.add_post(user_path + "/unlock", unlock_user)


async def users_page(request: web.Request) -> web.Response:
    await require_staff(request, "admin")
    return await _users_form(request)


async def _users_form(
    request: web.Request,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "admin/users.html",
        {
            "users": await users.list_users(request.app[DB]),
            "roles": ROLES,
            "errors": errors or {},
            "values": values or {"role": "agent"},
            "done": request.query.get("done", ""),
        },
        status=status,
    )


async def create_user(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    form = await admin_form(request)
    username = form.get("username", "").lower()
    role = form.get("role", "")
    try:
        password = await users.create_user(request.app[DB], username, role, actor=actor)
    except users.UserError as exc:
        return await _users_form(
            request,
            errors={exc.field: exc.key},
            values={"username": username, "role": role},
            status=422,
        )
    log.info("staff_user_created", user_id=actor.id, role=role)
    return _one_time_password(request, username, password, created=True)


def _one_time_password(
    request: web.Request, username: str, password: str, *, created: bool
) -> web.Response:
    return render(
        request,
        "admin/one_time_password.html",
        {"account": username, "password": password, "created": created},
    )


async def _find_user(request: web.Request) -> dict[str, Any]:
    username = request.match_info["username"]
    for user in await users.list_users(request.app[DB]):
        if user["username"] == username:
            return user
    raise NotFound("admin_error_no_user")


async def user_page(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    return await _user_form(request, actor)


async def _user_form(
    request: web.Request,
    actor: StaffUser,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    user = await _find_user(request)
    return render(
        request,
        "admin/user.html",
        {
            "user": user,
            "roles": ROLES,
            "is_self": user["id"] == actor.id,
            "errors": errors or {},
            "done": request.query.get("done", ""),
        },
        status=status,
    )


async def change_role(request: web.Request) -> web.Response:
    return await _change_user(request, _set_role)


async def change_active(request: web.Request) -> web.Response:
    return await _change_user(request, _set_active)


#: Changes one thing about a user from the form; returns the ``done`` notice.
UserChange = Callable[[Database, str, dict[str, str], StaffUser], Awaitable[str]]


async def _change_user(request: web.Request, change: UserChange) -> web.Response:
    """Apply ``change`` to the user in the path: the form again with 422 if
    refused, otherwise back to the user's page with what was done."""
    actor = await require_staff(request, "admin")
    user = await _find_user(request)
    form = await admin_form(request)
    try:
        done = await change(request.app[DB], user["username"], form, actor)
    except users.UserError as exc:
        return await _user_form(request, actor, {exc.field: exc.key}, 422)
    return see_other(f"/staff/admin/users/{user['username']}?done={done}")


async def _set_role(
    db: Database, username: str, form: dict[str, str], actor: StaffUser
) -> str:
    await users.set_role(db, username, form.get("role", ""), actor=actor)
    return "role"


async def _set_active(
    db: Database, username: str, form: dict[str, str], actor: StaffUser
) -> str:
    if form.get("active") not in ("0", "1"):
        raise users.UserError(
            "active must be 0 or 1", field="active", key="admin_error_active"
        )
    active = form["active"] == "1"
    await users.set_active(db, username, active, actor=actor)
    return "reactivated" if active else "deactivated"


async def reset_user(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    user = await _find_user(request)
    password = await users.reset_user(request.app[DB], user["username"], actor=actor)
    log.info("staff_user_reset", user_id=actor.id, target_id=user["id"])
    return _one_time_password(request, user["username"], password, created=False)


async def unlock_user(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    user = await _find_user(request)
    await users.unlock_user(request.app[DB], user["username"], actor=actor)
    return see_other(f"/staff/admin/users/{user['username']}?done=unlocked")
