"""Staff sign-in: password, TOTP, sessions, lockout, roles, cookies, first login."""

from __future__ import annotations

from tests.controlplane.staff import sign_in


async def test_full_login_with_totp_reaches_a_staff_session(client):
    user = await sign_in(client, "agent")
    assert user.role == "agent"
    page = await client.get("/staff/login", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/staff"
