"""The account lock holds against concurrent sign-in attempts: an attempt is
claimed on the account before its password or code is checked, so a burst checks
at most ``lockout_threshold`` wrong guesses however many arrive at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import sqlalchemy as sa

from beeldbel.config import SecurityConfig
from controlplane.app.factory import create_app
from controlplane.staff import auth
from controlplane.storage.database import DB
from controlplane.storage.schema import users
from tests.controlplane.staff_accounts import (
    PASSWORD,
    create,
    submit_password,
    totp_code,
)
from tests.helpers import csrf_from

THRESHOLD = 5


@pytest.fixture
async def app_client(aiohttp_client, make_config, db_url):
    security = SecurityConfig(
        lockout_threshold=THRESHOLD, login_per_ip_per_minute=10_000
    )
    return await aiohttp_client(create_app(make_config(db_url, security=security)))


@pytest.fixture
def checked_passwords(monkeypatch) -> list[tuple[str, bool]]:
    """Every password argon2 checks, with its outcome."""
    checked: list[tuple[str, bool]] = []
    verify = auth._verify

    def counting(stored: str, password: str) -> bool:
        ok = verify(stored, password)
        checked.append((password, ok))
        return ok

    monkeypatch.setattr(auth, "_verify", counting)
    return checked


async def _row(client: Any, username: str) -> Any:
    async with client.server.app[DB].read() as conn:
        query = sa.select(users).where(users.c.username == username)
        return (await conn.execute(query)).one()


async def _post_all(client: Any, path: str, forms: list[dict[str, str]]) -> list[int]:
    page = await client.get(path)
    token = csrf_from(await page.text())

    async def post(form: dict[str, str]) -> int:
        data = {"csrf_token": token, **form}
        response = await client.post(path, data=data, allow_redirects=False)
        return int(response.status)

    return list(await asyncio.gather(*(post(form) for form in forms)))


async def _assert_locked_after_threshold(
    client: Any, username: str, checked: list[Any], statuses: list[int]
) -> None:
    """Only the first ``THRESHOLD`` wrong answers were checked (401); the rest
    were refused unchecked (429), and the account is locked."""
    assert len(checked) <= THRESHOLD, (
        f"{len(checked)} checked, statuses {Counter(statuses)}"
    )
    assert Counter(statuses) == {401: THRESHOLD, 429: len(statuses) - THRESHOLD}
    row = await _row(client, username)
    assert row.failed_logins == THRESHOLD
    assert row.locked_until is not None


def _wrong_code() -> str:
    valid = {totp_code(offset_steps=k) for k in (-1, 0, 1)}
    return next(c for c in ("123456", "654321", "111111", "222222") if c not in valid)


async def test_fifty_concurrent_wrong_passwords_check_at_most_threshold(
    app_client, checked_passwords
):
    username = await create(app_client, "agent", "burst.target")
    forms = [{"username": username, "password": f"wrong {i}"} for i in range(50)]
    statuses = await _post_all(app_client, "/staff/login", forms)
    await _assert_locked_after_threshold(
        app_client, username, checked_passwords, statuses
    )


async def test_right_password_among_concurrent_wrong_ones(
    app_client, checked_passwords
):
    """What holds with 1 right password among 19 wrong ones sent at once: at most
    ``threshold`` wrong ones are checked (each a 401, the rest 429 unchecked); the
    right one gets in only if it was checked before the threshold-th wrong one was
    counted, and otherwise it is a 429 like the rest, with the account locked."""
    username = await create(app_client, "agent", "burst.mixed")
    forms = [{"username": username, "password": f"wrong {i}"} for i in range(19)]
    forms.insert(10, {"username": username, "password": PASSWORD})
    statuses = await _post_all(app_client, "/staff/login", forms)
    right = statuses.pop(10)
    wrong_checked = [p for p, ok in checked_passwords if not ok]
    assert len(wrong_checked) <= THRESHOLD, (
        f"{len(wrong_checked)} wrong passwords checked, statuses {Counter(statuses)}"
    )
    assert Counter(statuses) == {401: len(wrong_checked), 429: 19 - len(wrong_checked)}
    row = await _row(app_client, username)
    if right == 303:
        assert (PASSWORD, True) in checked_passwords
    else:
        assert right == 429
        assert PASSWORD not in [p for p, _ in checked_passwords]
        assert len(wrong_checked) == THRESHOLD
        assert row.locked_until is not None
    assert row.failed_logins == len(wrong_checked)


async def test_fifty_concurrent_wrong_codes_check_at_most_threshold(
    app_client, monkeypatch
):
    username = await create(app_client, "agent", "code.burst")
    assert (await submit_password(app_client, username)).status == 303
    checked: list[str] = []
    match = auth.match_totp

    def counting(secret: str, code: str, last_step: int) -> int | None:
        checked.append(code)
        return match(secret, code, last_step)

    monkeypatch.setattr(auth, "match_totp", counting)
    forms = [{"totp_code": _wrong_code()} for _ in range(50)]
    statuses = await _post_all(app_client, "/staff/mfa", forms)
    await _assert_locked_after_threshold(app_client, username, checked, statuses)


async def test_a_right_password_gives_its_attempt_back(app_client):
    """A right password does not count as a failure: ``threshold - 1`` wrong ones
    and then the right one leave the account unlocked, so the code can follow."""
    username = await create(app_client, "agent", "typo.user")
    for i in range(THRESHOLD - 1):
        assert (await submit_password(app_client, username, f"typo {i}")).status == 401
    assert (await submit_password(app_client, username)).status == 303
    row = await _row(app_client, username)
    assert (row.failed_logins, row.locked_until) == (THRESHOLD - 1, None)
    page = await app_client.get("/staff/mfa")
    data = {"csrf_token": csrf_from(await page.text()), "totp_code": totp_code()}
    response = await app_client.post("/staff/mfa", data=data, allow_redirects=False)
    assert response.status == 303
    row = await _row(app_client, username)
    assert (row.failed_logins, row.locked_until) == (0, None)
