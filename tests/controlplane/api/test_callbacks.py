"""The integrator API: keys, scopes, idempotency and clear errors for bad input."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from beeldbel.config import SecurityConfig
from controlplane.api import idempotency
from controlplane.app.factory import create_app
from controlplane.base.errors import Unauthorized
from controlplane.requests.callbacks import NewRequest, store_request
from controlplane.security.api_keys import (
    authenticate,
    create_api_key,
    list_api_keys,
    revoke_api_key,
)
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import (
    api_keys,
    audit_log,
    callback_requests,
    idempotency_keys,
)
from tests.controlplane.sample_requests import VALID
from tests.helpers import beeldbel_cli

ROOT = Path(__file__).resolve().parents[3]


async def _key(
    client: Any,
    scopes: tuple[str, ...] = ("callbacks:write", "callbacks:read"),
    name: str = "test",
) -> str:
    return await create_api_key(client.server.app[DB], name, tuple(scopes))


def _auth(key: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", **extra}


async def _count(client: Any) -> int:
    async with client.server.app[DB].read() as conn:
        count: int = (
            await conn.execute(
                sa.select(sa.func.count()).select_from(callback_requests)
            )
        ).scalar_one()
    return count


async def test_create_then_read_without_personal_data(client):
    key = await _key(client)
    response = await client.post("/api/v1/callbacks", json=VALID, headers=_auth(key))
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["state"] == "new"
    assert body["id"] == body["reference"]
    assert body["channel"] == "video"
    assert body["accessibility"] == ["extra_time"]
    assert response.headers["Location"] == f"/api/v1/callbacks/{body['reference']}"
    for personal in ("Jan de Vries", "12345678", "jan@example.nl", "langzaam"):
        assert personal not in await response.text()

    again = await client.get(response.headers["Location"], headers=_auth(key))
    assert again.status == 200
    assert (await again.json())["reference"] == body["reference"]
    async with client.server.app[DB].read() as conn:
        row = (await conn.execute(sa.select(callback_requests))).one()
    assert row.source == "api"
    assert row.phone == "+31612345678"
    assert row.api_key_id is not None


async def test_missing_wrong_and_revoked_keys_are_401(client):
    key = await _key(client)
    wrong_secret = key[: key.rindex("_") + 1] + "x" * 43
    prefix = key.split("_")[1]
    await revoke_api_key(client.server.app[DB], prefix)
    for headers in (
        {},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer nonsense"},
        _auth(wrong_secret),
        _auth(key),
    ):
        response = await client.post("/api/v1/callbacks", json=VALID, headers=headers)
        assert response.status == 401, headers
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="beeldbel"')
        assert ("invalid_token" in challenge) == bool(headers)
        assert (await response.json())["error"]["code"] == "unauthorized"
    assert await _count(client) == 0


async def test_missing_scope_is_403(client):
    reader = await _key(client, ("callbacks:read",))
    response = await client.post("/api/v1/callbacks", json=VALID, headers=_auth(reader))
    assert response.status == 403
    assert "callbacks:write" in (await response.json())["error"]["message"]


async def test_keys_see_only_their_own_requests(client):
    mine, other = await _key(client, name="a"), await _key(client, name="b")
    created = await client.post("/api/v1/callbacks", json=VALID, headers=_auth(mine))
    location = created.headers["Location"]
    assert (await client.get(location, headers=_auth(other))).status == 404
    cancel = await client.post(location + "/cancel", headers=_auth(other))
    assert cancel.status == 404
    assert (await client.get(location, headers=_auth(mine))).status == 200


async def test_same_idempotency_key_replays_the_first_response(client):
    key = await _key(client)
    headers = _auth(key, **{"Idempotency-Key": "order-17"})
    first = await client.post("/api/v1/callbacks", json=VALID, headers=headers)
    reordered = dict(reversed(list(VALID.items())))
    second = await client.post("/api/v1/callbacks", json=reordered, headers=headers)
    assert first.status == second.status == 201
    assert await first.json() == await second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Location"] == first.headers["Location"]
    assert await _count(client) == 1


async def test_same_idempotency_key_with_another_body_is_refused(client):
    key = await _key(client)
    headers = _auth(key, **{"Idempotency-Key": "order-18"})
    await client.post("/api/v1/callbacks", json=VALID, headers=headers)
    other = {**VALID, "channel": "phone"}
    response = await client.post("/api/v1/callbacks", json=other, headers=headers)
    assert response.status == 422
    assert (await response.json())["error"]["code"] == "idempotency_key_reused"
    assert await _count(client) == 1


async def test_an_invalid_request_does_not_use_up_its_key(client):
    key = await _key(client)
    headers = _auth(key, **{"Idempotency-Key": "order-19"})
    wrong = {**VALID, "phone": "12"}
    first = await client.post("/api/v1/callbacks", json=wrong, headers=headers)
    assert first.status == 422
    fixed = await client.post("/api/v1/callbacks", json=VALID, headers=headers)
    assert fixed.status == 201
    assert "Idempotent-Replayed" not in fixed.headers
    assert await _count(client) == 1


async def test_concurrent_identical_requests_create_one(client):
    key = await _key(client)
    headers = _auth(key, **{"Idempotency-Key": "burst"})
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/callbacks", json=VALID, headers=headers)
            for _ in range(8)
        )
    )
    assert {r.status for r in responses} == {201}
    references = {(await r.json())["reference"] for r in responses}
    assert len(references) == 1
    assert await _count(client) == 1
    # the first to commit answers; the others get its response replayed
    replayed = [r.headers.get("Idempotent-Replayed") for r in responses]
    assert replayed.count(None) == 1


async def test_a_failure_after_storing_leaves_no_request_and_no_key(client):
    db = client.server.app[DB]
    new = NewRequest(
        "Jan", "+31612345678", "video", "report_crime", "nl", "asap", "api"
    )

    async def fail_after_storing(conn):
        await store_request(conn, new, "api:1:crash")
        raise RuntimeError("crash before the response is kept")

    with pytest.raises(RuntimeError):
        await idempotency.once(db, 1, "crash", "print", fail_after_storing)
    assert await _count(client) == 0
    async with db.read() as conn:
        keys = (await conn.execute(sa.select(idempotency_keys))).all()
    assert keys == []


async def test_a_key_left_in_flight_by_an_earlier_version_is_taken_over(client):
    key = await _key(client)
    async with client.server.app[DB].write() as conn:
        api_key_id = (await conn.execute(sa.select(api_keys.c.id))).scalar_one()
        await conn.execute(
            sa.insert(idempotency_keys).values(
                api_key_id=api_key_id,
                key="left-over",
                fingerprint=idempotency.fingerprint("POST", "/api/v1/callbacks", VALID),
                status=idempotency.IN_FLIGHT,
                body="",
                created_at=datetime.now(UTC),
            )
        )
    headers = _auth(key, **{"Idempotency-Key": "left-over"})
    first = await client.post("/api/v1/callbacks", json=VALID, headers=headers)
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers
    second = await client.post("/api/v1/callbacks", json=VALID, headers=headers)
    assert second.headers["Idempotent-Replayed"] == "true"
    assert await second.json() == await first.json()
    assert await _count(client) == 1


async def test_keys_have_separate_idempotency_scopes(client):
    a, b = await _key(client, name="a"), await _key(client, name="b")
    for key in (a, b):
        response = await client.post(
            "/api/v1/callbacks",
            json=VALID,
            headers=_auth(key, **{"Idempotency-Key": "1"}),
        )
        assert response.status == 201
    assert await _count(client) == 2


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there", "é"])
async def test_malformed_idempotency_key_is_400(
    sqlite_url, make_config, aiohttp_client, value
):
    client = await aiohttp_client(create_app(make_config(sqlite_url)))
    key = await _key(client)
    response = await client.post(
        "/api/v1/callbacks",
        json=VALID,
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": value},
    )
    assert response.status == 400
    assert "Idempotency-Key" in (await response.json())["error"]["message"]


BAD_BODIES = [
    # (body, content type, status, word the message or details must name)
    (b"{not json", "application/json", 400, "JSON"),
    (b"\xff\xfe", "application/json", 400, "UTF-8"),
    (b"[1, 2]", "application/json", 400, "object"),
    (b'"text"', "application/json", 400, "object"),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400, "JSON"),
    (b"name=x", "application/x-www-form-urlencoded", 415, "application/json"),
    (b"{}", "text/plain", 415, "application/json"),
    (b'{"name": "x", "colour": "red"}', "application/json", 422, "colour"),
    (b'{"name": 5}', "application/json", 422, "name"),
    (b'{"accessibility": "extra_time"}', "application/json", 422, "accessibility"),
    (b'{"accessibility": [1]}', "application/json", 422, "accessibility"),
    (b'{"consent": "yes"}', "application/json", 422, "consent"),
    (b'{"name": null}', "application/json", 422, "name"),
    (b'{"name": "a\\u0000b"}', "application/json", 422, "name"),
    (b'{"email": "\\ud800"}', "application/json", 422, "email"),
]


@pytest.mark.parametrize(("body", "ctype", "status", "word"), BAD_BODIES)
async def test_bad_bodies_are_clear_json_errors(
    sqlite_url, make_config, aiohttp_client, body, ctype, status, word
):
    client = await aiohttp_client(create_app(make_config(sqlite_url)))
    key = await _key(client)
    response = await client.post(
        "/api/v1/callbacks", data=body, headers=_auth(key, **{"Content-Type": ctype})
    )
    assert response.status == status
    error = (await response.json())["error"]
    assert error["code"]
    assert error["message"]
    assert word in error["message"] + " ".join(error.get("details", {}))
    assert await _count(client) == 0


async def test_oversized_body_is_413(sqlite_url, make_config, aiohttp_client):
    config = make_config(sqlite_url, security=SecurityConfig(max_body_bytes=1024))
    client = await aiohttp_client(create_app(config))
    key = await _key(client)
    body = {**VALID, "accessibility_note": "x" * 2000}
    response = await client.post("/api/v1/callbacks", json=body, headers=_auth(key))
    assert response.status == 413
    assert "1024" in (await response.json())["error"]["message"]


async def test_validation_uses_the_form_rules_in_english(client):
    key = await _key(client)
    body = {**VALID, "phone": "0900-1234567", "topic": "nope"}
    del body["consent"]
    response = await client.post("/api/v1/callbacks", json=body, headers=_auth(key))
    assert response.status == 422
    details = (await response.json())["error"]["details"]
    assert set(details) == {"phone", "topic", "consent"}
    assert all(" " in message for message in details.values())
    assert not any(m.startswith("citizen_error") for m in details.values())


async def test_slot_requests_need_a_bookable_slot(client):
    key = await _key(client)
    body = {**VALID, "preferred": "slot", "slot": "2001-01-01T10:00:00+00:00"}
    response = await client.post("/api/v1/callbacks", json=body, headers=_auth(key))
    assert response.status == 422
    assert "slot" in (await response.json())["error"]["details"]


async def test_wrong_method_and_unknown_route_are_json(
    sqlite_url, make_config, aiohttp_client
):
    client = await aiohttp_client(create_app(make_config(sqlite_url)))
    for method, path, status, allow in (
        # GET lists the key's requests (issue 13)
        ("DELETE", "/api/v1/callbacks", 405, "GET,HEAD,POST"),
        ("GET", "/api/v1/callbacks/BB-2222-2222/cancel", 405, "POST"),
        ("GET", "/api/v1/nothing", 404, None),
        ("GET", "/api/v1/callbacks/BB-2222-2222/extra", 404, None),
    ):
        response = await client.request(method, path)
        assert response.status == status, path
        assert (await response.json())["error"]["code"]
        if status == 405:
            assert response.headers["Allow"] == allow
            assert "not" in (await response.json())["error"]["message"]


async def test_cancel_only_while_nobody_calls(client):
    key = await _key(client)
    created = await client.post("/api/v1/callbacks", json=VALID, headers=_auth(key))
    location = created.headers["Location"]
    cancelled = await client.post(location + "/cancel", headers=_auth(key))
    assert cancelled.status == 200
    body = await cancelled.json()
    assert body["state"] == "cancelled"
    assert body["closed_at"] is not None
    again = await client.post(location + "/cancel", headers=_auth(key))
    assert again.status == 409
    assert "cancelled" in (await again.json())["error"]["message"]
    async with client.server.app[DB].read() as conn:
        entry = (await conn.execute(sa.select(audit_log))).one()
    assert entry.action == "request_cancelled"
    assert entry.username == f"api:{key.split('_')[1]}"
    assert entry.details["from_state"] == "new"


async def test_cancel_refuses_a_body_with_fields(
    sqlite_url, make_config, aiohttp_client
):
    client = await aiohttp_client(create_app(make_config(sqlite_url)))
    key = await _key(client)
    created = await client.post("/api/v1/callbacks", json=VALID, headers=_auth(key))
    response = await client.post(
        created.headers["Location"] + "/cancel", json={"why": 1}, headers=_auth(key)
    )
    assert response.status == 422
    assert "why" in (await response.json())["error"]["message"]


async def test_rate_limit_per_key(sqlite_url, make_config, aiohttp_client):
    config = make_config(sqlite_url, security=SecurityConfig(api_per_key_per_minute=2))
    client = await aiohttp_client(create_app(config))
    key, other = await _key(client, name="a"), await _key(client, name="b")
    statuses = [
        (await client.get("/api/v1/callbacks/BB-2222-2222", headers=_auth(key))).status
        for _ in range(3)
    ]
    assert statuses == [404, 404, 429]
    limited = await client.get("/api/v1/callbacks/BB-2222-2222", headers=_auth(key))
    assert int(limited.headers["Retry-After"]) >= 1
    assert (
        await client.get("/api/v1/callbacks/BB-2222-2222", headers=_auth(other))
    ).status == 404


async def test_keys_are_stored_as_hashes_and_listed_without_them(client):
    db = client.server.app[DB]
    key = await create_api_key(db, "crm", ("callbacks:read", "callbacks:write"))
    assert key.startswith("bb_")
    secret = key.split("_", 2)[2]
    async with db.read() as conn:
        row = (await conn.execute(sa.select(api_keys))).one()
    assert secret not in str(tuple(row))
    listed = await list_api_keys(db)
    assert [k["name"] for k in listed] == ["crm"]
    assert "key_hash" not in listed[0]
    assert listed[0]["scopes"] == ["callbacks:write", "callbacks:read"]
    assert await revoke_api_key(db, listed[0]["prefix"]) is True
    assert await revoke_api_key(db, listed[0]["prefix"]) is False


async def test_unknown_scope_is_refused(sqlite_url, make_config, aiohttp_client):
    client = await aiohttp_client(create_app(make_config(sqlite_url)))
    with pytest.raises(ValueError, match="callbacks:delete"):
        await create_api_key(client.server.app[DB], "x", ("callbacks:delete",))
    with pytest.raises(ValueError, match="scope"):
        await create_api_key(client.server.app[DB], "x", ())


async def test_admin_commands_manage_keys(tmp_path):
    """``beeldbel admin apikey-create/-list/-revoke`` as real processes."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.sqlite3'}"
    toml = tmp_path / "beeldbel.toml"
    toml.write_text(f'[database]\nurl = "{url}"\n')
    code, out = await beeldbel_cli(
        toml, "admin", "apikey-create", "crm", "--scope", "callbacks:read"
    )
    assert code == 0, out
    key = out.split()[-1]
    prefix = key.split("_")[1]
    code, out = await beeldbel_cli(toml, "admin", "apikey-list")
    assert f"{prefix}\tcrm\tcallbacks:read\tactive" in out
    assert key.split("_", 2)[2] not in out
    db = Database(url)
    try:
        assert (await authenticate(db, f"Bearer {key}")).scopes == ("callbacks:read",)
        code, out = await beeldbel_cli(toml, "admin", "apikey-revoke", prefix)
        assert code == 0, out
        with pytest.raises(Unauthorized):
            await authenticate(db, f"Bearer {key}")
    finally:
        await db.close()
    code, out = await beeldbel_cli(toml, "admin", "apikey-revoke", prefix)
    assert code == 1
