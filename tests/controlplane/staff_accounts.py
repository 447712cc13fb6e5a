"""Test helper: sign a staff member in through the real login flow over HTTP."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pyotp

from controlplane.security.secrets_store import SECRET_KEY
from controlplane.staff import auth, users
from controlplane.storage.database import DB
from tests.helpers import csrf_from

PASSWORD = "correct horse battery staple"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def totp_code(secret: str = TOTP_SECRET, offset_steps: int = 0) -> str:
    """The code an authenticator shows now (or ``offset_steps`` later)."""
    return pyotp.TOTP(secret).at(time.time() + offset_steps * auth.TOTP_STEP)


async def create(client: Any, role: str = "agent", username: str | None = None) -> str:
    """Create an account with :data:`PASSWORD` and :data:`TOTP_SECRET`."""
    username = username or f"test.{role}"
    await users.create_user(
        client.server.app[DB],
        username,
        role,
        password=PASSWORD,
        totp_secret=TOTP_SECRET,
        secret_key=client.server.app[SECRET_KEY],
    )
    return username


async def submit_password(
    client: Any, username: str, password: str = PASSWORD, next_path: str = ""
) -> Any:
    """GET the login page, POST the password; returns the (unfollowed) response."""
    page = await client.get("/staff/login")
    data = {"csrf_token": csrf_from(await page.text()), "username": username}
    data["password"] = password
    if next_path:
        data["next"] = next_path
    return await client.post("/staff/login", data=data, allow_redirects=False)


async def submit_code(client: Any, code: str, path: str = "/staff/mfa") -> Any:
    page = await client.get(path)
    assert page.status == 200, f"{path} answered {page.status}"
    data = {"csrf_token": csrf_from(await page.text()), "totp_code": code}
    return await client.post(path, data=data, allow_redirects=False)


async def sign_in(
    client: Any, role: str = "agent", username: str | None = None
) -> auth.StaffUser:
    """Create a user with ``role`` and sign in: the client's cookies are then a
    full staff session."""
    username = await create(client, role, username)
    response = await submit_password(client, username)
    assert response.status == 303, await response.text()
    assert response.headers["Location"].startswith("/staff/mfa")
    response = await submit_code(client, totp_code())
    assert response.status == 303, await response.text()
    found = [
        u
        for u in await users.list_users(client.server.app[DB])
        if u["username"] == username
    ]
    return auth.StaffUser(id=found[0]["id"], username=username, role=role)


async def add_staff_to(
    db_url: str, config_path: Path, username: str, role: str, password: str
) -> str:
    """A staff account in the database of a running desk (its config file gives
    the secret key the TOTP secret is sealed with); returns the TOTP secret."""
    from beeldbel.config import load_config
    from controlplane.security.secrets_store import load_secret_key
    from controlplane.storage.database import Database

    secret = pyotp.random_base32()
    key = load_secret_key(load_config(config_path))
    db = Database(db_url)
    try:
        await users.create_user(
            db, username, role, password=password, totp_secret=secret, secret_key=key
        )
    finally:
        await db.close()
    return secret
