"""Join links: single use, bound to one browser, void after the call; the HTTP side."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from beeldbel.config import ServerConfig
from controlplane.base.errors import LinkExpired, LinkUsed, NotFound
from controlplane.calls import join_links
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import join_links as join_links_table

_DATA_CSRF = re.compile(r'data-csrf="([^"]+)"')


async def new_link(
    db: Database,
    room_id: str = "room-1",
    role: str = "citizen",
    ttl: timedelta = timedelta(hours=1),
) -> str:
    return await join_links.create_link(
        db, request_id=7, room_id=room_id, role=role, ttl=ttl
    )


async def test_token_is_random_urlsafe_and_stored_only_as_hash(db):
    token = await new_link(db)
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)  # 192 bits
    assert token != await new_link(db)
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(join_links_table))).all()
    assert all(token not in str(tuple(row)) for row in rows)


def test_link_carries_the_token_in_the_fragment():
    url = join_links.link_url("https://desk.example/", "abc")
    assert url == "https://desk.example/gesprek#t=abc"
    assert "?" not in url


async def test_exchange_once_then_refused_but_session_resumes(db):
    token = await new_link(db)
    session, info = await join_links.exchange(db, token)
    assert (info.room_id, info.role, info.request_id) == ("room-1", "citizen", 7)
    assert info.used_at is not None
    with pytest.raises(LinkUsed) as refused:
        await join_links.exchange(db, token)
    assert refused.value.message == "join_link_used"
    resumed = await join_links.resume(db, session)
    assert resumed.link_id == info.link_id
    with pytest.raises(NotFound):
        await join_links.resume(db, "not-a-session")
    with pytest.raises(NotFound):
        await join_links.exchange(db, "never-issued-token-xyz")


async def test_void_room_refuses_every_token_but_keeps_the_survey(db):
    used = await new_link(db)
    unused = await new_link(db, role="interpreter")
    other_room = await new_link(db, room_id="room-2")
    session, _ = await join_links.exchange(db, used)

    assert await join_links.void_room(db, "room-1") == 2
    with pytest.raises(LinkExpired, match="join_link_ended"):
        await join_links.resume(db, session)
    with pytest.raises(LinkExpired, match="join_link_ended"):
        await join_links.exchange(db, unused)
    with pytest.raises(LinkExpired, match="join_link_ended"):
        await join_links.exchange(db, used)
    assert (await join_links.survey_session(db, session)).ended
    # another room is untouched
    await join_links.exchange(db, other_room)


async def test_expired_link_is_refused(db):
    token = await new_link(db)
    async with db.write() as conn:
        await conn.execute(
            join_links_table.update().values(
                expires_at=datetime.now(UTC) - timedelta(seconds=1)
            )
        )
    with pytest.raises(LinkExpired, match="join_link_expired"):
        await join_links.exchange(db, token)


async def test_survey_window_closes(db):
    session, _ = await join_links.exchange(db, await new_link(db))
    await join_links.void_room(db, "room-1")
    async with db.write() as conn:
        await conn.execute(
            join_links_table.update().values(
                voided_at=datetime.now(UTC)
                - join_links.SURVEY_WINDOW
                - timedelta(minutes=1)
            )
        )
    with pytest.raises(LinkExpired):
        await join_links.survey_session(db, session)


async def test_ten_concurrent_exchanges_one_wins(db):
    token = await new_link(db)
    results = await asyncio.gather(
        *(join_links.exchange(db, token) for _ in range(10)), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, tuple)]
    lost = [r for r in results if isinstance(r, LinkUsed)]
    assert (len(won), len(lost)) == (1, 9), results
    async with db.read() as conn:
        hashes = (
            await conn.execute(sa.select(join_links_table.c.browser_session_hash))
        ).scalars()
        assert len(list(hashes)) == 1


@pytest.mark.parametrize(
    ("role", "ttl"),
    [("agent", timedelta(minutes=1)), ("citizen", timedelta(0))],
    ids=["agent_role", "zero_ttl"],
)
async def test_bad_role_and_ttl_are_refused(sqlite_db, role, ttl):
    with pytest.raises(ValueError, match=r"role|ttl"):
        await join_links.create_link(
            sqlite_db, request_id=None, room_id="r", role=role, ttl=ttl
        )


# HTTP


async def landing(client: Any, path: str = "/gesprek") -> tuple[str, str]:
    response = await client.get(path)
    assert response.status == 200
    html = await response.text()
    match = _DATA_CSRF.search(html)
    assert match
    return html, match.group(1)


async def post_token(client: Any, token: str, csrf: str, **headers: str) -> Any:
    return await client.post(
        "/gesprek/openen",
        json={"token": token},
        headers={"X-CSRF-Token": csrf, "Accept": "application/json", **headers},
    )


async def test_landing_page_explains_without_javascript(client):
    html, _ = await landing(client)
    assert "<noscript>" in html
    assert "JavaScript" in html
    assert "0900-8844" in html
    assert 'src="/static/js/join.js' in html
    assert 'id="join-error"' in html
    assert 'role="alert"' in html
    response = await client.get("/gesprek")
    assert response.headers["Cache-Control"] == "no-store"
    js = await client.get("/static/js/join.js")
    body = await js.text()
    assert "history.replaceState" in body
    assert "X-CSRF-Token" in body


async def test_open_sets_browser_session_and_second_browser_is_refused(client):
    db = client.app[DB]
    token = await new_link(db)
    _, csrf = await landing(client)
    response = await post_token(client, token, csrf)
    assert response.status == 200
    assert await response.json() == {"next": "/gesprek/apparaat"}
    cookie = response.cookies["bb_call"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert response.headers["Cache-Control"] == "no-store"

    # the same browser may open its link again (reconnect), and sees "continue"
    again = await post_token(client, token, csrf)
    assert again.status == 200
    assert "bb_call" not in again.cookies
    html, _ = await landing(client)
    assert 'id="join-continue"' in html

    # another browser (its own cookie jar) is refused with a clear code
    async with aiohttp.ClientSession(
        base_url=client.make_url("/"), cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as other:
        _, other_csrf = await landing(other)
        refused = await post_token(other, token, other_csrf)
        assert refused.status == 409
        assert (await refused.json())["error"]["code"] == "link_used"
        other_html, _ = await landing(other)
        assert 'id="join-continue"' not in other_html


async def test_open_refusals(client):
    db = client.app[DB]
    _, csrf = await landing(client)
    unknown = await post_token(client, "x" * 32, csrf)
    assert unknown.status == 404
    assert (await unknown.json())["error"]["code"] == "not_found"

    token = await new_link(db, room_id="ended")
    await join_links.void_room(db, "ended")
    ended = await post_token(client, token, csrf)
    assert ended.status == 410
    assert (await ended.json())["error"]["code"] == "link_expired"

    no_csrf = await client.post("/gesprek/openen", json={"token": token})
    assert no_csrf.status == 403
    as_form = await client.post(
        "/gesprek/openen", data={"token": token}, headers={"X-CSRF-Token": csrf}
    )
    assert as_form.status == 415
    for body in (b"{not json", b'{"token": 5}', b"[]", b'{"token": "short"}'):
        bad = await client.post(
            "/gesprek/openen",
            data=body,
            headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
        )
        assert bad.status == 400, body


async def test_secure_cookie_on_https(
    make_config, sqlite_url, aiohttp_client, tmp_path
):
    from controlplane.app.factory import create_app

    config = make_config(
        sqlite_url,
        server=ServerConfig(
            public_url="https://desk.example", data_dir=str(tmp_path / "d")
        ),
    )
    client = await aiohttp_client(create_app(config))
    response = await client.get("/gesprek")
    anchor = response.cookies["__Host-bb_csrf"].value
    csrf = _DATA_CSRF.search(await response.text())
    assert csrf
    token = await new_link(client.app[DB])
    opened = await client.post(
        "/gesprek/openen",
        json={"token": token},
        headers={"X-CSRF-Token": csrf.group(1), "Cookie": f"__Host-bb_csrf={anchor}"},
    )
    assert opened.status == 200
    cookie = opened.cookies["__Host-bb_call"]
    assert cookie["secure"]
    assert cookie["httponly"]
    assert cookie["samesite"] == "Strict"
    assert cookie["path"] == "/"
