"""Staff sign-in: password, TOTP, sessions, lockout, roles, cookies, first login."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st
from structlog.testing import capture_logs

from beeldbel.config import SecurityConfig, ServerConfig
from controlplane.app.factory import create_app
from controlplane.base.metrics import METRICS
from controlplane.staff import auth, users
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import audit_log, sessions
from controlplane.storage.schema import users as users_table
from tests.controlplane.staff_accounts import (
    PASSWORD,
    TOTP_SECRET,
    create,
    sign_in,
    submit_code,
    submit_password,
    totp_code,
)
from tests.helpers import csrf_from


@pytest.fixture
async def sqlite_client(aiohttp_client, make_config, sqlite_url):
    """For tests where the database backend does not matter."""
    return await aiohttp_client(create_app(make_config(sqlite_url)))


def _db(client: Any) -> Database:
    db: Database = client.server.app[DB]
    return db


async def _rows(client: Any, table: sa.Table, *where: Any) -> list[Any]:
    async with _db(client).read() as conn:
        return list((await conn.execute(sa.select(table).where(*where))).all())


async def _actions(client: Any) -> list[str]:
    rows = await _rows(client, audit_log)
    return [row.action for row in sorted(rows, key=lambda r: r.id)]


async def _user(client: Any, username: str) -> Any:
    (row,) = await _rows(client, users_table, users_table.c.username == username)
    return row


async def _update_user(client: Any, username: str, **values: Any) -> None:
    async with _db(client).write() as conn:
        await conn.execute(
            sa.update(users_table)
            .where(users_table.c.username == username)
            .values(**values)
        )


async def _update_sessions(client: Any, **values: Any) -> None:
    async with _db(client).write() as conn:
        await conn.execute(sa.update(sessions).values(**values))


def _session_cookie(client: Any) -> str | None:
    for cookie in client.session.cookie_jar:
        if cookie.key == "bb_session":
            return str(cookie.value)
    return None


async def _signed_in(client: Any) -> bool:
    """Whether the client's cookies open a staff page (the queue, which every
    role sees and whose viewing is not audited, unlike the audit log's)."""
    response = await client.get("/staff", allow_redirects=False)
    return bool(response.status == 200)


async def test_full_login_with_totp_reaches_a_staff_session(client):
    user = await sign_in(client, "supervisor")
    assert user.role == "supervisor"
    assert await _signed_in(client)
    page = await client.get("/staff/login", allow_redirects=False)
    assert page.status == 303
    assert page.headers["Location"] == "/staff"
    assert await _actions(client) == ["user_created", "staff_login_succeeded"]
    (entry,) = await _rows(
        client, audit_log, audit_log.c.action == "staff_login_succeeded"
    )
    assert entry.user_id == user.id
    assert entry.username == user.username
    metrics = client.server.app[METRICS]
    assert metrics.logins.labels("password_ok")._value.get() == 1
    assert metrics.logins.labels("succeeded")._value.get() == 1
    (row,) = await _rows(client, sessions)
    assert row.mfa_done
    assert row.id_hash != _session_cookie(client)
    assert len(row.id_hash) == 64


async def test_staff_page_templates_see_the_signed_in_user(sqlite_client):
    client = sqlite_client
    await sign_in(client, "admin", "nav.admin")
    html = await (await client.get("/staff/admin")).text()
    assert 'id="logout"' in html
    assert "nav.admin" in html
    assert 'href="/staff/requests/new"' in html


async def test_anonymous_page_redirects_to_login_with_next(sqlite_client):
    client = sqlite_client
    response = await client.get("/staff/admin/audit?page=2", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/staff/login?next=")
    page = await client.get(response.headers["Location"])
    assert 'name="next" value="/staff/admin/audit?page=2"' in await page.text()


async def test_anonymous_json_request_is_401_not_a_redirect(sqlite_client):
    client = sqlite_client
    response = await client.get(
        "/staff/admin/audit", headers={"Accept": "application/json"}
    )
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "unauthorized"
    response = await client.get(
        "/staff/admin/audit", headers={"Accept": "text/event-stream"}
    )
    assert response.status == 401


async def test_login_returns_to_next_and_ignores_foreign_next(sqlite_client):
    client = sqlite_client
    username = await create(client, "supervisor")
    response = await submit_password(client, username, next_path="/staff/admin/audit")
    assert response.headers["Location"] == "/staff/mfa?next=/staff/admin/audit"
    page = await client.get(response.headers["Location"])
    assert 'name="next" value="/staff/admin/audit"' in await page.text()
    data = {
        "csrf_token": csrf_from(await page.text()),
        "totp_code": totp_code(),
        "next": "/staff/admin/audit",
    }
    done = await client.post("/staff/mfa", data=data, allow_redirects=False)
    assert done.headers["Location"] == "/staff/admin/audit"

    for evil in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        assert auth.safe_next(evil) is None
    assert auth.login_url("//evil.example") == "/staff/login"


async def test_role_checks(sqlite_client):
    client = sqlite_client
    await sign_in(client, "agent")
    assert (await client.get("/staff/admin")).status == 403
    assert (await client.get("/staff/admin/audit")).status == 403


async def test_supervisor_reads_audit_but_not_admin_pages(sqlite_client):
    client = sqlite_client
    await sign_in(client, "supervisor")
    assert (await client.get("/staff/admin/audit")).status == 200
    assert (await client.get("/staff/admin")).status == 403
    assert (await client.get("/staff/admin/topics")).status == 403


def test_role_ranks():
    admin = auth.StaffUser(1, "a", "admin")
    agent = auth.StaffUser(2, "b", "agent")
    assert admin.has_role("agent")
    assert admin.has_role("supervisor")
    assert agent.has_role("agent")
    assert not agent.has_role("supervisor")
    assert not auth.StaffUser(3, "c", "unknown").has_role("agent")


async def test_wrong_password_is_refused_with_a_generic_message(client):
    username = await create(client, "agent", "known.user")
    wrong = await submit_password(client, username, "not the password!")
    unknown = await submit_password(client, "nobody.here", PASSWORD)
    assert wrong.status == unknown.status == 401
    wrong_html, unknown_html = await wrong.text(), await unknown.text()
    message = "De gebruikersnaam of het wachtwoord klopt niet."
    assert message in wrong_html
    assert message in unknown_html
    assert 'id="password-error"' in wrong_html
    assert 'aria-invalid="true"' in wrong_html
    assert _session_cookie(client) is None
    assert (await _user(client, username)).failed_logins == 1
    assert await _actions(client) == [
        "user_created",
        "staff_login_failed",
        "staff_login_failed",
    ]


async def test_a_username_with_nul_is_refused_not_a_500(client):
    """PostgreSQL cannot compare text holding NUL; no account has such a name."""
    response = await submit_password(client, "known\x00user")
    assert response.status == 422
    assert "De gebruikersnaam of het wachtwoord klopt niet." in await response.text()
    assert _session_cookie(client) is None


async def test_empty_fields_are_named(sqlite_client):
    client = sqlite_client
    page = await client.get("/staff/login")
    response = await client.post(
        "/staff/login", data={"csrf_token": csrf_from(await page.text())}
    )
    assert response.status == 422
    html = await response.text()
    assert "Vul uw gebruikersnaam in." in html
    assert "Vul uw wachtwoord in." in html
    assert 'href="#username"' in html


async def test_login_without_csrf_token_is_refused(sqlite_client):
    client = sqlite_client
    await create(client, "agent", "csrf.user")
    response = await client.post(
        "/staff/login", data={"username": "csrf.user", "password": PASSWORD}
    )
    assert response.status == 403
    assert _session_cookie(client) is None


async def test_wrong_totp_code_is_refused(sqlite_client):
    client = sqlite_client
    username = await create(client, "supervisor")
    await submit_password(client, username)
    good = totp_code()
    wrong = "000000" if good != "000000" else "111111"
    response = await submit_code(client, wrong)
    assert response.status == 401
    assert "Deze code klopt niet" in await response.text()
    assert not await _signed_in(client)
    assert (await _user(client, username)).failed_logins == 1
    for junk in ("abc", "", "1234567"):
        assert (await submit_code(client, junk)).status == 401
    response = await submit_code(client, good)
    assert response.status == 303
    assert await _signed_in(client)
    assert (await _user(client, username)).failed_logins == 0


async def test_a_code_in_other_digits_is_wrong_not_a_500(sqlite_client):
    """Arabic-Indic digits pass ``str.isdigit`` but are no authenticator code."""
    username = await create(sqlite_client, "agent")
    await submit_password(sqlite_client, username)
    response = await submit_code(sqlite_client, "\u0661" * 6)
    assert response.status == 401
    assert not await _signed_in(sqlite_client)


async def test_replayed_totp_code_is_refused(client):
    """A code is accepted once: after logging out, the same code fails."""
    username = await create(client, "supervisor")
    code = totp_code()
    await submit_password(client, username)
    assert (await submit_code(client, code)).status == 303
    page = await client.get("/staff/admin/audit")
    await client.post(
        "/staff/logout", data={"csrf_token": csrf_from(await page.text())}
    )
    await submit_password(client, username)
    response = await submit_code(client, code)
    assert response.status == 401
    assert not await _signed_in(client)


def test_totp_accepts_one_step_of_drift_and_nothing_older():
    now = 1_800_000_000.0
    totp = pyotp.TOTP(TOTP_SECRET)
    step = auth.totp_step(now)
    assert auth.match_totp(TOTP_SECRET, totp.at(now), 0, now) == step
    assert auth.match_totp(TOTP_SECRET, totp.at(now - 30), 0, now) == step - 1
    assert auth.match_totp(TOTP_SECRET, totp.at(now + 30), 0, now) == step + 1
    assert auth.match_totp(TOTP_SECRET, totp.at(now - 60), 0, now) is None
    assert auth.match_totp(TOTP_SECRET, totp.at(now), step, now) is None
    assert (
        auth.match_totp(TOTP_SECRET, totp.at(now)[:3] + " " + totp.at(now)[3:], 0, now)
        == step
    )


async def test_lockout_grows_and_clears(aiohttp_client, make_config, db_url):
    config = make_config(db_url, security=SecurityConfig(lockout_threshold=3))
    client = await aiohttp_client(create_app(config))
    username = await create(client, "supervisor", "locked.user")
    for _ in range(2):
        assert (
            await submit_password(client, username, "wrong password!")
        ).status == 401
    assert (await _user(client, username)).locked_until is None
    assert (await submit_password(client, username, "wrong password!")).status == 401
    first = (await _user(client, username)).locked_until
    assert first is not None
    assert timedelta(seconds=50) < first - datetime.now(UTC) <= timedelta(minutes=1)

    refused = await submit_password(client, username, PASSWORD)
    assert refused.status == 429
    assert "tijdelijk geblokkeerd" in await refused.text()
    assert _session_cookie(client) is None

    past = datetime.now(UTC) - timedelta(seconds=1)
    await _update_user(client, username, locked_until=past)
    assert (await submit_password(client, username, "wrong password!")).status == 401
    second = (await _user(client, username)).locked_until
    assert timedelta(seconds=110) < second - datetime.now(UTC) <= timedelta(minutes=2)

    await _update_user(client, username, locked_until=past)
    assert (await submit_password(client, username, PASSWORD)).status == 303
    row = await _user(client, username)
    assert row.failed_logins == 4
    assert row.locked_until is None
    assert (await submit_code(client, totp_code())).status == 303
    row = await _user(client, username)
    assert row.failed_logins == 0
    assert row.locked_until is None


async def test_wrong_totp_codes_also_lock(aiohttp_client, make_config, sqlite_url):
    config = make_config(sqlite_url, security=SecurityConfig(lockout_threshold=3))
    client = await aiohttp_client(create_app(config))
    username = await create(client, "agent", "code.guesser")
    await submit_password(client, username)
    for _ in range(3):
        assert (await submit_code(client, "000000x")).status == 401
    response = await submit_code(client, totp_code())
    assert response.status == 429
    assert "tijdelijk geblokkeerd" in await response.text()


async def test_idle_timeout_ends_the_session(client):
    await sign_in(client, "supervisor")
    limit = timedelta(minutes=SecurityConfig().session_idle_minutes)
    await _update_sessions(
        client, last_seen_at=datetime.now(UTC) - limit + timedelta(seconds=5)
    )
    assert await _signed_in(client)
    await _update_sessions(
        client, last_seen_at=datetime.now(UTC) - limit - timedelta(seconds=1)
    )
    assert not await _signed_in(client)
    assert await _rows(client, sessions) == []


async def test_activity_keeps_the_session_alive(sqlite_client):
    client = sqlite_client
    await sign_in(client, "supervisor")
    stale = datetime.now(UTC) - timedelta(minutes=10)
    await _update_sessions(client, last_seen_at=stale)
    assert await _signed_in(client)
    (row,) = await _rows(client, sessions)
    assert row.last_seen_at > stale + timedelta(minutes=9)


async def test_absolute_timeout_ends_an_active_session(
    aiohttp_client, make_config, db_url
):
    config = make_config(db_url, security=SecurityConfig(session_absolute_hours=2))
    client = await aiohttp_client(create_app(config))
    await sign_in(client, "supervisor")
    (row,) = await _rows(client, sessions)
    assert row.expires_at - row.created_at == timedelta(hours=2)
    await _update_sessions(client, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert not await _signed_in(client)
    assert await _rows(client, sessions) == []


async def test_logout_kills_the_server_session(client):
    await sign_in(client, "supervisor")
    token = _session_cookie(client)
    page = await client.get("/staff/admin/audit")
    response = await client.post(
        "/staff/logout",
        data={"csrf_token": csrf_from(await page.text())},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/staff/login"
    assert await _rows(client, sessions) == []
    assert "staff_logged_out" in await _actions(client)
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"bb_session": token})
    assert _session_cookie(client) == token
    assert not await _signed_in(client)


async def test_session_id_rotates_after_password_and_after_mfa(sqlite_client):
    client = sqlite_client
    username = await create(client, "supervisor")
    await submit_password(client, username)
    pending = _session_cookie(client)
    assert pending
    await submit_code(client, totp_code())
    full = _session_cookie(client)
    assert full
    assert full != pending
    (row,) = await _rows(client, sessions)
    assert row.mfa_done
    client.session.cookie_jar.clear()
    client.session.cookie_jar.update_cookies({"bb_session": pending})
    assert not await _signed_in(client)


async def test_a_pending_session_is_not_signed_in(sqlite_client):
    client = sqlite_client
    username = await create(client, "supervisor")
    await submit_password(client, username)
    assert _session_cookie(client)
    assert not await _signed_in(client)


async def test_cookie_attributes_on_https(
    aiohttp_client, make_config, sqlite_url, tmp_path
):
    config = make_config(
        sqlite_url,
        server=ServerConfig(
            public_url="https://127.0.0.1", data_dir=str(tmp_path / "d")
        ),
    )
    client = await aiohttp_client(create_app(config))
    username = await create(client, "agent")
    page = await client.get("/staff/login")
    anchor = SimpleCookie(page.headers["Set-Cookie"])["__Host-bb_csrf"].value
    response = await client.post(
        "/staff/login",
        data={
            "csrf_token": csrf_from(await page.text()),
            "username": username,
            "password": PASSWORD,
        },
        headers={"Cookie": f"__Host-bb_csrf={anchor}"},
        allow_redirects=False,
    )
    assert response.status == 303
    header = next(h for h in response.headers.getall("Set-Cookie") if "bb_session" in h)
    assert header.startswith("__Host-bb_session=")
    attributes = {part.strip().lower() for part in header.split(";")[1:]}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)


async def test_first_login_changes_password_then_enrols_totp(client):
    one_time = await users.create_user(_db(client), "new.person", "supervisor")
    assert (await _user(client, "new.person")).must_change_password
    response = await submit_password(client, "new.person", one_time)
    assert response.headers["Location"] == "/staff/password"
    # no short cut to the code step or a staff page
    assert (await client.get("/staff/mfa", allow_redirects=False)).headers[
        "Location"
    ] == "/staff/password"
    assert not await _signed_in(client)

    page = await client.get("/staff/password")
    token = csrf_from(await page.text())

    async def choose(new: str, confirm: str | None = None) -> Any:
        return await client.post(
            "/staff/password",
            data={
                "csrf_token": token,
                "new_password": new,
                "confirm_password": new if confirm is None else confirm,
            },
            allow_redirects=False,
        )

    short = await choose("too short")
    assert short.status == 422
    assert "minstens 12 tekens" in await short.text()
    same = await choose(one_time)
    assert same.status == 422
    assert "eenmalige wachtwoord" in await same.text()
    mismatch = await choose("a brand new passphrase", "another passphrase!")
    assert mismatch.status == 422
    assert 'id="confirm-password-error"' in await mismatch.text()
    done = await choose("a brand new passphrase")
    assert done.status == 303
    assert done.headers["Location"] == "/staff/enrol"

    enrol = await client.get("/staff/enrol")
    html = await enrol.text()
    assert 'src="data:image/svg+xml' in html
    assert 'alt="QR-code om Beeldbel-account new.person' in html
    found = re.search(r'id="totp-secret">.*?<code>([A-Z2-7 ]+)</code>', html)
    assert found is not None
    secret = found.group(1)
    secret = secret.replace(" ", "")
    assert len(secret) == 32
    wrong = await submit_code(
        client,
        "123456" if pyotp.TOTP(secret).now() != "123456" else "654321",
        "/staff/enrol",
    )
    assert wrong.status == 422
    response = await submit_code(client, pyotp.TOTP(secret).now(), "/staff/enrol")
    assert response.status == 303
    assert await _signed_in(client)
    row = await _user(client, "new.person")
    assert row.totp_confirmed
    assert not row.must_change_password
    assert await _actions(client) == [
        "user_created",
        "staff_password_changed",
        "staff_totp_enrolled",
        "staff_login_succeeded",
    ]
    ok, _ = await auth.verify_password(row.password_hash, "a brand new passphrase")
    assert ok


async def test_reset_ends_sessions_and_requires_new_setup(client):
    user = await sign_in(client, "supervisor")
    password = await users.reset_user(_db(client), user.username)
    assert not await _signed_in(client)
    row = await _user(client, user.username)
    assert row.totp_secret is None
    assert not row.totp_confirmed
    response = await submit_password(client, user.username, password)
    assert response.headers["Location"] == "/staff/password"


async def test_deactivated_user_is_signed_out_and_cannot_log_in(sqlite_client):
    client = sqlite_client
    user = await sign_in(client, "supervisor")
    await users.set_active(_db(client), user.username, False)
    assert not await _signed_in(client)
    assert (await submit_password(client, user.username)).status == 401


async def test_bootstrap_admin_only_once(client):
    password = await users.bootstrap_admin(_db(client))
    assert password is not None
    assert len(password) >= 20
    row = await _user(client, "admin")
    assert row.role == "admin"
    assert row.must_change_password
    assert await users.bootstrap_admin(_db(client)) is None
    assert [u["username"] for u in await users.list_users(_db(client))] == ["admin"]


async def test_bootstrap_admin_not_when_other_users_exist(sqlite_client):
    client = sqlite_client
    await create(client, "agent", "someone")
    assert await users.bootstrap_admin(_db(client)) is None


async def test_create_user_rejects_bad_and_duplicate_names(sqlite_client):
    client = sqlite_client
    with pytest.raises(users.UserError):
        await users.create_user(_db(client), "No Spaces", "agent")
    with pytest.raises(users.UserError):
        await users.create_user(_db(client), "valid.name", "superuser")
    await users.create_user(_db(client), "valid.name", "agent")
    with pytest.raises(users.UserError):
        await users.create_user(_db(client), "valid.name", "agent")


async def test_logs_hold_user_ids_not_usernames(sqlite_client):
    client = sqlite_client
    with capture_logs() as logs:
        await submit_password(client, "ghost.user", "whatever password")
        user = await sign_in(client, "agent", "private.name")
    text = repr(logs)
    assert "private.name" not in text
    assert "ghost.user" not in text
    events = {entry["event"] for entry in logs}
    assert {"staff_login_failed", "staff_login_succeeded"} <= events
    succeeded = next(e for e in logs if e["event"] == "staff_login_succeeded")
    assert succeeded["user_id"] == user.id


@given(st.from_regex(r"[a-z0-9._-]{3,64}", fullmatch=True))
def test_valid_usernames_are_accepted(username):
    users.check_username(username)


@given(st.text(max_size=80))
def test_usernames_outside_the_rules_are_refused(username):
    if re.fullmatch(r"[a-z0-9._-]{3,64}", username):
        users.check_username(username)
    else:
        with pytest.raises(users.UserError):
            users.check_username(username)


@given(st.text(max_size=40))
def test_password_rules(password):
    problem = users.check_new_password(password, username="some.user")
    assert (problem is None) == (
        len(password) >= 12 and password.lower() != "some.user"
    )


def test_one_time_passwords_are_strong_and_unambiguous():
    seen = {users.one_time_password() for _ in range(50)}
    assert len(seen) == 50
    for password in seen:
        assert re.fullmatch(
            r"([A-HJ-NP-Za-hjkmnp-z2-9]{5}-){3}[A-HJ-NP-Za-hjkmnp-z2-9]{5}", password
        )


def test_staff_user_is_frozen():
    user = auth.StaffUser(1, "x.y", "agent")
    with pytest.raises(dataclasses.FrozenInstanceError):
        user.role = "admin"  # type: ignore[misc]


async def test_login_attempts_are_rate_limited_per_address(
    aiohttp_client, make_config, sqlite_url
):
    config = make_config(sqlite_url, security=SecurityConfig(login_per_ip_per_minute=2))
    client = await aiohttp_client(create_app(config))
    for _ in range(2):
        assert (
            await submit_password(client, "some.one", "wrong password")
        ).status == 401
    response = await submit_password(client, "some.one", "wrong password")
    assert response.status == 429
    assert "Retry-After" in response.headers
    assert (
        client.server.app[METRICS].rate_limited.labels("login_per_ip")._value.get() == 1
    )


async def test_sign_in_pages_in_english(sqlite_client):
    client = sqlite_client
    page = await (await client.get("/staff/login?lang=en")).text()
    assert '<html lang="en">' in page
    assert "Staff log in" in page
    username = await create(client, "agent", "english.user")
    await submit_password(client, username)
    mfa = await (await client.get("/staff/mfa?lang=en")).text()
    assert "Enter your verification code" in mfa
    assert 'autocomplete="one-time-code"' in mfa
    assert 'id="totp-submit"' in mfa


async def test_old_password_hashes_are_upgraded_at_login(sqlite_client):
    """A hash made with other argon2 parameters is replaced after a good login."""
    client = sqlite_client
    username = await create(client, "agent", "old.hash")
    old = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1).hash(PASSWORD)
    await _update_user(client, username, password_hash=old)
    assert (await submit_password(client, username)).status == 303
    upgraded = (await _user(client, username)).password_hash
    assert upgraded != old
    assert "m=47104,t=1,p=1" in upgraded
    assert (await auth.verify_password(upgraded, PASSWORD))[0]


async def test_concurrent_failures_each_count(client):
    username = await create(client, "agent", "many.tries")
    page = await client.get("/staff/login")
    token = csrf_from(await page.text())

    async def attempt() -> int:
        data = {"csrf_token": token, "username": username, "password": "wrong!"}
        response = await client.post("/staff/login", data=data)
        return int(response.status)

    assert await asyncio.gather(*(attempt() for _ in range(4))) == [401] * 4
    assert (await _user(client, username)).failed_logins == 4


async def test_one_code_signs_in_one_session_even_when_raced(client):
    """Two pending sessions sending the same code at once: only one gets in."""
    username = await create(client, "agent", "raced.code")
    other = TestClient(client.server)
    try:
        for each in (client, other):
            assert (await submit_password(each, username)).status == 303
        pages = [await c.get("/staff/mfa") for c in (client, other)]
        tokens = [csrf_from(await p.text()) for p in pages]
        code = totp_code()
        results = await asyncio.gather(
            *(
                c.post(
                    "/staff/mfa",
                    data={"csrf_token": t, "totp_code": code},
                    allow_redirects=False,
                )
                for c, t in zip((client, other), tokens, strict=True)
            )
        )
        assert sorted(r.status for r in results) == [303, 401]
    finally:
        await other.session.close()


async def test_abandoned_sessions_are_deleted_at_the_next_login(client):
    await sign_in(client, "agent", "left.browser.open")
    await _update_sessions(client, last_seen_at=datetime.now(UTC) - timedelta(hours=2))
    client.session.cookie_jar.clear()
    await sign_in(client, "agent", "next.person")
    rows = await _rows(client, sessions)
    assert len(rows) == 1
    assert rows[0].user_id == (await _user(client, "next.person")).id


async def test_creating_the_same_user_twice_at_once_gives_one_account(client):
    results = await asyncio.gather(
        *(users.create_user(_db(client), "twin", "agent") for _ in range(3)),
        return_exceptions=True,
    )
    assert sum(isinstance(r, str) for r in results) == 1
    assert all(isinstance(r, (str, users.UserError)) for r in results)
    assert [u["username"] for u in await users.list_users(_db(client))] == ["twin"]


async def test_a_post_after_the_session_ended_goes_to_login_without_next(sqlite_client):
    client = sqlite_client
    await sign_in(client, "admin")
    page = await client.get("/staff/admin/hours")
    token = csrf_from(await page.text())
    await _update_sessions(client, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    response = await client.post(
        "/staff/admin/hours",
        data={"csrf_token": token, "mon-opens": "09:00", "mon-closes": "17:00"},
        allow_redirects=False,
    )
    assert response.status == 303
    assert response.headers["Location"] == "/staff/login"
