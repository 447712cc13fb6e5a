"""Adversarial: bursts of concurrent sign-in attempts against one account, each
from a client of its own at an address of its own (``X-Forwarded-For`` behind a
trusted proxy), over real HTTP. However they arrive, at most ``lockout_threshold``
wrong passwords or codes are checked (a 401) before the account is locked; every
other attempt is a 429 and is not checked."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from beeldbel.config import SecurityConfig
from controlplane.app.factory import create_app
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
CLIENTS = 60


@pytest.fixture
async def app_client(aiohttp_client, make_config, db_url):
    config = make_config(db_url, security=SecurityConfig(lockout_threshold=THRESHOLD))
    server = dataclasses.replace(config.server, trusted_proxies=1)
    return await aiohttp_client(create_app(dataclasses.replace(config, server=server)))


def _address(i: int) -> dict[str, str]:
    return {"X-Forwarded-For": f"127.0.1.{i + 1}"}


async def _login(base: str, i: int, form: dict[str, str]) -> int:
    """Client ``i``, with cookies and an address of its own, posts one password."""
    jar = aiohttp.CookieJar(unsafe=True)  # the server is at an IP address
    async with aiohttp.ClientSession(
        base, headers=_address(i), cookie_jar=jar
    ) as session:
        async with session.get("/staff/login") as page:
            token = csrf_from(await page.text())
        data = {"csrf_token": token, **form}
        async with session.post(
            "/staff/login", data=data, allow_redirects=False
        ) as response:
            return response.status


async def _login_burst(client: Any, forms: list[dict[str, str]]) -> list[int]:
    base = str(client.make_url("/"))
    return list(
        await asyncio.gather(*(_login(base, i, f) for i, f in enumerate(forms)))
    )


async def _code_burst(client: Any, codes: list[str]) -> list[int]:
    """Every code posted at once on ``client``'s one pending session."""
    page = await client.get("/staff/mfa")
    token = csrf_from(await page.text())

    async def post(i: int, code: str) -> int:
        data = {"csrf_token": token, "totp_code": code}
        response = await client.post(
            "/staff/mfa", data=data, headers=_address(i), allow_redirects=False
        )
        return int(response.status)

    return list(await asyncio.gather(*(post(i, c) for i, c in enumerate(codes))))


async def _row(client: Any, username: str) -> Any:
    async with client.server.app[DB].read() as conn:
        query = sa.select(users).where(users.c.username == username)
        return (await conn.execute(query)).one()


async def _end_lock(client: Any, username: str) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    async with client.server.app[DB].write() as conn:
        await conn.execute(
            sa.update(users)
            .where(users.c.username == username)
            .values(locked_until=past)
        )


def _wrong_code() -> str:
    valid = {totp_code(offset_steps=k) for k in (-1, 0, 1)}
    return next(c for c in ("123456", "654321", "111111") if c not in valid)


async def test_login_bursts_check_at_most_threshold(app_client, record_property):
    started = time.monotonic()
    attempts = 0
    username = await create(app_client, "admin", "burst.admin")

    # 59 wrong and the right one, from 60 addresses at once
    forms = [{"username": username, "password": f"guess {i}"} for i in range(59)]
    forms.insert(30, {"username": username, "password": PASSWORD})
    statuses = await _login_burst(app_client, forms)
    attempts += len(statuses)
    right = statuses.pop(30)
    seen = Counter(statuses)
    assert seen[401] <= THRESHOLD, f"{seen[401]} wrong passwords checked: {seen}"
    assert seen[401] + seen[429] == 59, seen
    assert right in (303, 429)
    if right == 429:
        assert seen[401] == THRESHOLD
        assert (await _row(app_client, username)).locked_until is not None

    # once the lock ends, a burst of wrong ones gets one guess, which locks again
    if (await _row(app_client, username)).locked_until is None:
        forms = [{"username": username, "password": f"more {i}"} for i in range(60)]
        attempts += len(await _login_burst(app_client, forms))
    await _end_lock(app_client, username)
    forms = [{"username": username, "password": f"again {i}"} for i in range(60)]
    statuses = await _login_burst(app_client, forms)
    attempts += len(statuses)
    assert Counter(statuses) == {401: 1, 429: 59}

    # 60 wrong codes at once on one pending session, from 60 addresses
    coder = await create(app_client, "agent", "burst.coder")
    assert (await submit_password(app_client, coder)).status == 303
    statuses = await _code_burst(app_client, [_wrong_code()] * CLIENTS)
    attempts += len(statuses) + 1
    assert Counter(statuses) == {401: THRESHOLD, 429: CLIENTS - THRESHOLD}
    assert (await _row(app_client, coder)).locked_until is not None

    elapsed = time.monotonic() - started
    record_property("attempts", attempts)
    record_property("seconds", round(elapsed, 1))
    print(
        f"login concurrency: {attempts} attempts in {elapsed:.1f} s;"
        f" the right password among 59 wrong ones got a {right}"
    )
    assert elapsed < 30
