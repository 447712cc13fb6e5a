"""Staff TOTP secrets at rest: encrypted on enrolment, migrated by 0004, fail closed."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from typing import Any

import pyotp
import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from structlog.testing import capture_logs

from controlplane.app.factory import create_app
from controlplane.security.secret_box import (
    SIGNING_KEYS,
    TOTP_SECRETS,
    SecretBox,
    SecretUnreadable,
    open_totp_secret,
    seal_totp_secret,
)
from controlplane.security.secrets_store import SECRET_KEY, load_secret_key
from controlplane.staff import auth, users
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import audit_log
from controlplane.storage.schema import users as users_table
from tests.controlplane.staff_accounts import (
    PASSWORD,
    TOTP_SECRET,
    submit_code,
    submit_password,
    totp_code,
)

BEFORE = "0003_call_media_node"
KEY = b"a-secret-key-of-the-server-0123456789"


async def _stored(db: Database, username: str) -> Any:
    async with db.read() as conn:
        return (
            await conn.execute(
                sa.select(users_table.c.totp_secret).where(
                    users_table.c.username == username
                )
            )
        ).scalar_one()


async def _user_row(db: Database, username: str) -> Any:
    async with db.read() as conn:
        return (
            await conn.execute(
                sa.select(users_table).where(users_table.c.username == username)
            )
        ).one()


async def _insert_plain(db: Database, username: str, secret: str) -> None:
    """A confirmed account as written before 0004: the secret in clear."""
    async with db.write() as conn:
        await conn.execute(
            users_table.insert().values(
                username=username,
                password_hash=await auth.hash_password(PASSWORD),
                role="agent",
                totp_secret=secret,
                totp_confirmed=True,
                totp_last_step=0,
                must_change_password=False,
                failed_logins=0,
                active=True,
                created_at=datetime.now(UTC),
            )
        )


# the box


def test_a_sealed_secret_opens_only_with_its_key_and_purpose():
    sealed = seal_totp_secret(KEY, TOTP_SECRET)
    assert sealed.startswith("gAAAAA")
    assert TOTP_SECRET not in sealed
    assert open_totp_secret(KEY, sealed) == TOTP_SECRET
    with pytest.raises(SecretUnreadable):
        open_totp_secret(b"another-secret-key-of-the-server-0000", sealed)
    with pytest.raises(SecretUnreadable):
        SecretBox(KEY, SIGNING_KEYS).open(sealed)
    with pytest.raises(SecretUnreadable):
        open_totp_secret(KEY, SecretBox(KEY, SIGNING_KEYS).seal(b"x" * 32))
    for garbage in (TOTP_SECRET, "", "gAAAAAnope", "é"):
        with pytest.raises(SecretUnreadable):
            open_totp_secret(KEY, garbage)


def test_signing_keys_sealed_before_the_box_still_open():
    """The box keeps the HKDF construction signing_keys.py used on its own."""
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=None,
        info=b"beeldbel signing keys v1",
    ).derive(KEY)
    old = Fernet(base64.urlsafe_b64encode(derived)).encrypt(b"raw key").decode()
    assert SecretBox(KEY, SIGNING_KEYS).open(old) == b"raw key"
    assert TOTP_SECRETS != SIGNING_KEYS


async def test_create_user_with_a_secret_needs_the_key(sqlite_db):
    with pytest.raises(ValueError, match="secret_key"):
        await users.create_user(sqlite_db, "no.key", "agent", totp_secret=TOTP_SECRET)


# sign-in


async def test_enrolment_stores_the_secret_encrypted_and_its_codes_work(client):
    db = client.server.app[DB]
    await users.create_user(db, "new.agent", "agent", password=PASSWORD)
    await submit_password(client, "new.agent")
    page = await client.get("/staff/enrol")
    found = re.search(
        r'id="totp-secret">.*?<code>([A-Z2-7 ]+)</code>', await page.text()
    )
    assert found is not None
    secret = found.group(1).replace(" ", "")
    stored = await _stored(db, "new.agent")
    assert secret not in stored
    assert stored.startswith("gAAAAA")
    response = await submit_code(client, pyotp.TOTP(secret).now(), "/staff/enrol")
    assert response.status == 303
    assert response.headers["Location"] == "/staff"
    stored = await _stored(db, "new.agent")
    assert open_totp_secret(client.server.app[SECRET_KEY], stored) == secret


async def test_a_preset_secret_is_stored_encrypted_and_signs_in(client):
    db = client.server.app[DB]
    await users.create_user(
        db,
        "preset",
        "agent",
        password=PASSWORD,
        totp_secret=TOTP_SECRET,
        secret_key=client.server.app[SECRET_KEY],
    )
    assert TOTP_SECRET not in await _stored(db, "preset")
    await submit_password(client, "preset")
    response = await submit_code(client, totp_code())
    assert response.status == 303
    assert response.headers["Location"] == "/staff"


async def test_a_secret_under_another_key_fails_closed(client):
    db = client.server.app[DB]
    await users.create_user(
        db,
        "rotated",
        "agent",
        password=PASSWORD,
        totp_secret=TOTP_SECRET,
        secret_key=b"the-secret-key-before-it-changed-000",
    )
    sealed = await _stored(db, "rotated")
    await submit_password(client, "rotated")
    with capture_logs() as logs:
        response = await submit_code(client, totp_code())
    assert response.status == 401
    assert "Deze code klopt niet" in await response.text()
    assert (await client.get("/staff", allow_redirects=False)).status == 303
    events = [
        entry for entry in logs if entry["event"] == "staff_totp_secret_unreadable"
    ]
    assert len(events) == 1
    assert events[0]["log_level"] == "error"
    assert not any(
        TOTP_SECRET in repr(entry) or sealed in repr(entry) for entry in logs
    )
    # not the user's doing: audited, but no step towards a lock
    row = await _user_row(db, "rotated")
    assert row.failed_logins == 0
    async with db.read() as conn:
        details = (
            await conn.execute(
                sa.select(audit_log.c.details).where(
                    audit_log.c.action == "staff_mfa_failed"
                )
            )
        ).scalar_one()
    assert details["reason"] == "secret_unreadable"


async def test_an_unreadable_unconfirmed_secret_is_replaced_at_enrolment(client):
    db = client.server.app[DB]
    await users.create_user(db, "half.way", "agent", password=PASSWORD)
    foreign = seal_totp_secret(b"the-secret-key-before-it-changed-000", TOTP_SECRET)
    async with db.write() as conn:
        await conn.execute(
            users_table.update()
            .where(users_table.c.username == "half.way")
            .values(totp_secret=foreign)
        )
    await submit_password(client, "half.way")
    page = await client.get("/staff/enrol")
    assert page.status == 200
    found = re.search(
        r'id="totp-secret">.*?<code>([A-Z2-7 ]+)</code>', await page.text()
    )
    assert found is not None
    secret = found.group(1).replace(" ", "")
    assert secret != TOTP_SECRET
    response = await submit_code(client, pyotp.TOTP(secret).now(), "/staff/enrol")
    assert response.status == 303


# migration 0004


async def test_0004_encrypts_plain_secrets_that_then_still_sign_in(
    aiohttp_client, config
):
    db = Database(config.database.url)
    try:
        await db.migrate(revision=BEFORE)
        await _insert_plain(db, "old.agent", TOTP_SECRET)
    finally:
        await db.close()
    # the control plane migrates at start, with its own secret_key
    client = await aiohttp_client(create_app(config))
    db = client.server.app[DB]
    stored = await _stored(db, "old.agent")
    assert stored.startswith("gAAAAA")
    assert open_totp_secret(load_secret_key(config), stored) == TOTP_SECRET
    await submit_password(client, "old.agent")
    response = await submit_code(client, totp_code())
    assert response.status == 303
    assert response.headers["Location"] == "/staff"


async def test_0004_upgrades_and_downgrades(db_url):
    db = Database(db_url)
    try:
        await db.migrate(revision=BEFORE)
        await _insert_plain(db, "old.agent", TOTP_SECRET)
        with pytest.raises(RuntimeError, match="secret_key"):
            await db.migrate()
        assert await _stored(db, "old.agent") == TOTP_SECRET

        await db.migrate(KEY)
        sealed = await _stored(db, "old.agent")
        assert open_totp_secret(KEY, sealed) == TOTP_SECRET
        await db.migrate(KEY)  # at head: nothing to do, nothing sealed twice
        assert await _stored(db, "old.agent") == sealed

        with pytest.raises(RuntimeError, match="secret_key"):
            await db.downgrade(BEFORE)
        with pytest.raises(RuntimeError, match="does not decrypt"):
            await db.downgrade(BEFORE, b"not-the-key-that-sealed-them-000000")
        assert await _stored(db, "old.agent") == sealed

        await db.downgrade(BEFORE, KEY)
        assert await _stored(db, "old.agent") == TOTP_SECRET
        await db.migrate(KEY)
        assert open_totp_secret(KEY, await _stored(db, "old.agent")) == TOTP_SECRET
    finally:
        await db.close()


async def test_0004_needs_no_key_without_secrets(db_url):
    db = Database(db_url)
    try:
        await db.migrate()
        await db.downgrade(BEFORE)
        await db.migrate()
    finally:
        await db.close()
