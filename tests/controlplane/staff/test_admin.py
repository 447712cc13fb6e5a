"""Admin pages: accounts, topics, opening hours and the audit log viewer."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from beeldbel.config import DEFAULT_TOPICS, WEEKDAYS, parse_hours
from controlplane.app.factory import create_app
from controlplane.requests.callbacks import NewRequest, create_request
from controlplane.requests.desk import DESK
from controlplane.security import audit
from controlplane.staff import admin
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import audit_log, sessions, users
from tests.controlplane.staff_accounts import create, sign_in, submit_password
from tests.helpers import csrf_from


@pytest.fixture
async def sqlite_client(aiohttp_client: Any, make_config: Any, sqlite_url: str) -> Any:
    """For tests where the database backend does not matter."""
    return await aiohttp_client(create_app(make_config(sqlite_url)))


def _db(client: Any) -> Database:
    db: Database = client.server.app[DB]
    return db


async def _post(client: Any, page: str, action: str, data: dict[str, str]) -> Any:
    """GET ``page`` for its form token, then POST ``data`` to ``action``."""
    html = await (await client.get(page)).text()
    return await client.post(
        action, data={"csrf_token": csrf_from(html), **data}, allow_redirects=False
    )


async def _audit(client: Any, action: str) -> list[Any]:
    async with _db(client).read() as conn:
        return list(
            (
                await conn.execute(
                    sa.select(audit_log)
                    .where(audit_log.c.action == action)
                    .order_by(audit_log.c.id)
                )
            ).all()
        )


async def test_admin_creates_a_user_who_can_then_log_in(client):
    admin = await sign_in(client, "admin")
    response = await _post(
        client,
        "/staff/admin",
        "/staff/admin/users",
        {"username": "New.Agent", "role": "agent"},
    )
    assert response.status == 200
    assert response.headers["Cache-Control"] == "no-store"
    html = await response.text()
    assert 'id="one-time-password"' in html
    password = html.split('id="one-time-password"><code>')[1].split("</code>")[0]
    assert len(password) == 23
    entry = (await _audit(client, "user_created"))[-1]
    assert entry.user_id == admin.id
    assert entry.username == admin.username
    assert entry.details == {"target": "new.agent", "role": "agent"}
    listing = await (await client.get("/staff/admin")).text()
    assert "new.agent" in listing
    assert password not in listing

    client.session.cookie_jar.clear()
    response = await submit_password(client, "new.agent", password)
    assert response.status == 303
    assert response.headers["Location"] == "/staff/password"


async def test_bad_username_is_shown_next_to_the_field(sqlite_client):
    client = sqlite_client
    await sign_in(client, "admin")
    for username, message in (
        ("x", "Gebruik 3 tot 64 tekens"),
        ("has space", "Gebruik 3 tot 64 tekens"),
        ("test.admin", "Deze gebruikersnaam bestaat al"),
    ):
        response = await _post(
            client,
            "/staff/admin",
            "/staff/admin/users",
            {"username": username, "role": "agent"},
        )
        assert response.status == 422
        html = await response.text()
        assert 'id="new-username-error"' in html
        assert message in html
        assert 'href="#new-username"' in html
    response = await _post(
        client,
        "/staff/admin",
        "/staff/admin/users",
        {"username": "fine.name", "role": "root"},
    )
    assert response.status == 422
    assert 'id="new-role-error"' in await response.text()
    assert len(await _audit(client, "user_created")) == 1


async def test_admin_changes_role_but_not_their_own(sqlite_client):
    client = sqlite_client
    admin = await sign_in(client, "admin")
    await create(client, "agent", "some.agent")
    page = "/staff/admin/users/some.agent"
    response = await _post(client, page, page + "/role", {"role": "supervisor"})
    assert response.status == 303
    assert response.headers["Location"] == page + "?done=role"
    assert (
        "De rol is gewijzigd." in await (await client.get(page + "?done=role")).text()
    )
    (entry,) = await _audit(client, "user_role_changed")
    assert entry.details == {"target": "some.agent", "role": "supervisor"}
    own = f"/staff/admin/users/{admin.username}"
    response = await _post(client, own, own + "/role", {"role": "agent"})
    assert response.status == 422
    assert "uw eigen rol" in await response.text()
    bad = await _post(client, page, page + "/role", {"role": "owner"})
    assert bad.status == 422
    assert (await client.get("/staff/admin/users/nobody.here")).status == 404


async def test_deactivate_ends_sessions_and_reactivate_restores(client):
    target = await sign_in(client, "agent", "leaving.agent")
    client.session.cookie_jar.clear()
    await sign_in(client, "admin")
    page = "/staff/admin/users/leaving.agent"
    response = await _post(client, page, page + "/active", {"active": "0"})
    assert response.status == 303
    async with _db(client).read() as conn:
        rows = (
            await conn.execute(
                sa.select(sessions).where(sessions.c.user_id == target.id)
            )
        ).all()
        active = (
            await conn.execute(sa.select(users.c.active).where(users.c.id == target.id))
        ).scalar_one()
    assert rows == []
    assert active is False
    assert await _audit(client, "user_deactivated")
    response = await _post(client, page, page + "/active", {"active": "1"})
    assert response.status == 303
    assert await _audit(client, "user_reactivated")
    bad = await _post(client, page, page + "/active", {"active": "maybe"})
    assert bad.status == 422


async def test_admin_reset_shows_a_new_one_time_password(sqlite_client):
    client = sqlite_client
    await create(client, "agent", "forgetful")
    await sign_in(client, "admin")
    page = "/staff/admin/users/forgetful"
    response = await _post(client, page, page + "/reset", {})
    assert response.status == 200
    html = await response.text()
    password = html.split('id="one-time-password"><code>')[1].split("</code>")[0]
    assert (await _audit(client, "user_reset"))[0].details == {"target": "forgetful"}
    client.session.cookie_jar.clear()
    response = await submit_password(client, "forgetful", password)
    assert response.headers["Location"] == "/staff/password"


async def test_agent_gets_403_and_anonymous_goes_to_login(sqlite_client):
    client = sqlite_client
    response = await client.get("/staff/admin/topics", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/staff/login?next=")
    await sign_in(client, "agent")
    for path in ("/staff/admin", "/staff/admin/topics", "/staff/admin/hours"):
        response = await client.get(path)
        assert response.status == 403
        assert "geen toegang" in await response.text()


async def test_admin_post_without_csrf_token_is_refused(sqlite_client):
    client = sqlite_client
    await sign_in(client, "admin")
    response = await client.post(
        "/staff/admin/users", data={"username": "sneaky", "role": "admin"}
    )
    assert response.status == 403
    assert len(await _audit(client, "user_created")) == 1  # the test admin


async def test_admin_edits_topics(client):
    await sign_in(client, "admin")
    desk = client.server.app[DESK]
    codes = [t.code for t in desk.current.topics]
    assert codes == ["report_crime", "report_question", "other"]
    data = {
        "report_crime-nl": "Aangifte doen (nieuw)",
        "report_crime-en": "Report a crime (new)",
        "report_crime-active": "1",
        "report_question-nl": "Vraag over een aangifte",
        "report_question-en": "Question about a report",
        "other-nl": "Iets anders",
        "other-en": "Something else",
        "other-active": "1",
        "new-code": "lost_property",
        "new-nl": "Gevonden voorwerpen",
        "new-en": "Lost property",
    }
    response = await _post(client, "/staff/admin/topics", "/staff/admin/topics", data)
    assert response.status == 303
    assert [t.code for t in desk.current.topics] == [
        "report_crime",
        "other",
        "lost_property",
    ]
    assert desk.current.topics[0].nl == "Aangifte doen (nieuw)"
    (entry,) = await _audit(client, "desk_topics_changed")
    assert entry.details["added"] == ["lost_property"]
    assert entry.details["removed"] == ["report_question"]
    # a restarted app sees the stored topics
    await desk.reload(_db(client))
    assert [t.code for t in desk.current.topics][-1] == "lost_property"
    page = await (await client.get("/staff/admin/topics?done=saved")).text()
    assert "De wijzigingen zijn opgeslagen." in page
    assert 'value="Lost property"' in page


async def test_bad_topic_values_are_shown_next_to_the_fields(sqlite_client):
    client = sqlite_client
    await sign_in(client, "admin")
    desk = client.server.app[DESK]
    before = desk.current.topics
    cases = [
        ({"new-code": "Bad Code", "new-nl": "x", "new-en": "y"}, "new-code"),
        ({"new-code": "report_crime", "new-nl": "x", "new-en": "y"}, "new-code"),
        ({"new-code": "fine_code", "new-nl": "", "new-en": "y"}, "new-nl"),
        ({"report_crime-nl": "", "report_crime-en": "x"}, "report_crime-nl"),
        ({"report_crime-nl": "x" * 101, "report_crime-en": "x"}, "report_crime-nl"),
        ({"report_crime-nl": "a\x00b", "report_crime-en": "x"}, "report_crime-nl"),
    ]
    for extra, field in cases:
        data = {
            "report_crime-nl": "Aangifte",
            "report_crime-en": "Report",
            "report_crime-active": "1",
            **extra,
        }
        response = await _post(
            client, "/staff/admin/topics", "/staff/admin/topics", data
        )
        assert response.status == 422, extra
        html = await response.text()
        field_id = field.replace("_", "-")
        assert f'id="{field_id}-error"' in html, extra
        assert f'href="#{field_id}"' in html
    response = await _post(client, "/staff/admin/topics", "/staff/admin/topics", {})
    assert response.status == 422
    assert "Bied minstens één onderwerp aan." in await response.text()
    assert desk.current.topics == before
    assert await _audit(client, "desk_topics_changed") == []


async def test_admin_edits_opening_hours(client):
    await sign_in(client, "admin")
    desk = client.server.app[DESK]
    data = {f"{day}-opens": "09:00" for day in ("mon", "tue", "wed", "thu", "fri")}
    data.update({f"{day}-closes": "17:30" for day in ("mon", "tue", "wed", "thu")})
    data["fri-closes"] = "24:00"
    response = await _post(client, "/staff/admin/hours", "/staff/admin/hours", data)
    assert response.status == 303
    hours = desk.current.opening_hours
    assert hours["mon"] == "09:00-17:30"
    assert hours["fri"] == "09:00-24:00"
    assert hours["sat"] == ""
    assert hours["sun"] == ""
    (entry,) = await _audit(client, "desk_opening_hours_changed")
    assert entry.details["opening_hours"]["mon"] == "09:00-17:30"
    page = await (await client.get("/staff/admin/hours")).text()
    assert 'id="mon-opens" name="mon-opens" value="09:00"' in page


async def test_bad_opening_hours_are_shown_next_to_the_fields(sqlite_client):
    client = sqlite_client
    await sign_in(client, "admin")
    desk = client.server.app[DESK]
    before = dict(desk.current.opening_hours)
    cases = [
        ({"mon-opens": "25:00", "mon-closes": "26:00"}, "mon-opens"),
        ({"mon-opens": "9am", "mon-closes": "17:00"}, "mon-opens"),
        ({"tue-opens": "17:00", "tue-closes": "09:00"}, "tue-closes"),
        ({"wed-opens": "09:00"}, "wed-closes"),
        ({"thu-closes": "17:00"}, "thu-opens"),
    ]
    for data, field in cases:
        response = await _post(client, "/staff/admin/hours", "/staff/admin/hours", data)
        assert response.status == 422, data
        html = await response.text()
        assert f'id="{field}-error"' in html, data
        assert 'aria-invalid="true"' in html
    assert desk.current.opening_hours == before
    assert await _audit(client, "desk_opening_hours_changed") == []


async def test_audit_log_viewer_filters_and_pages(client):
    admin = await sign_in(client, "admin")
    db = _db(client)
    created = await create_request(
        db,
        NewRequest(
            name="Jan Jansen",
            phone="+31612345678",
            channel="video",
            topic="other",
            language="nl",
            preferred="asap",
            source="web",
        ),
        "test-key-1",
    )
    base = datetime.now(UTC) - timedelta(days=1)
    async with db.write() as conn:
        for i in range(60):
            await audit.record(conn, "test_filler", user_id=admin.id, number=i)
        await audit.record(
            conn, "request_claimed", user_id=admin.id, request_id=created.id
        )
        await conn.execute(
            sa.update(audit_log)
            .where(audit_log.c.action == "test_filler")
            .values(at=base)
        )
    html = await (await client.get("/staff/admin/audit")).text()
    assert "Oudere regels" in html
    first_row = html.split("<tbody>")[1].split("</tr>")[0]
    assert "request_claimed" in first_row
    assert created.reference in first_row
    assert "Jan Jansen" not in html

    filtered = await (
        await client.get(f"/staff/admin/audit?reference={created.reference.lower()}")
    ).text()
    assert filtered.count("<tr>") == 2  # header and the one entry
    assert "request_claimed" in filtered

    page1 = await (await client.get("/staff/admin/audit?action=test_filler")).text()
    page2 = await (
        await client.get("/staff/admin/audit?action=test_filler&page=2")
    ).text()
    assert page1.count("<tr>") == 51
    assert page2.count("<tr>") == 11
    assert "Nieuwere regels" in page2
    assert "Oudere regels" not in page2
    junk = await client.get("/staff/admin/audit?page=abc&action=" + "x" * 500)
    assert junk.status == 200
    for name in ("reference", "action"):
        nul = await client.get("/staff/admin/audit", params={name: "a\x00b"})
        assert nul.status == 200, "NUL in a filter (PostgreSQL refuses it in SQL)"


async def test_admin_sees_and_lifts_a_lock(sqlite_client):
    client = sqlite_client
    await create(client, "agent", "locked.out")
    async with _db(client).write() as conn:
        await conn.execute(
            sa.update(users)
            .where(users.c.username == "locked.out")
            .values(
                failed_logins=5, locked_until=datetime.now(UTC) + timedelta(minutes=8)
            )
        )
    await sign_in(client, "admin")
    assert "Tijdelijk geblokkeerd" in await (await client.get("/staff/admin")).text()
    page = "/staff/admin/users/locked.out"
    response = await _post(client, page, page + "/unlock", {})
    assert response.status == 303
    assert (
        "De blokkade is opgeheven."
        in await (await client.get(response.headers["Location"])).text()
    )
    async with _db(client).read() as conn:
        row = (
            await conn.execute(sa.select(users).where(users.c.username == "locked.out"))
        ).one()
    assert row.failed_logins == 0
    assert row.locked_until is None
    assert (await _audit(client, "user_unlocked"))[0].details == {
        "target": "locked.out"
    }
    client.session.cookie_jar.clear()
    assert (await submit_password(client, "locked.out")).status == 303


_TIMES = st.one_of(
    st.from_regex(r"([01]\d|2[0-4]):[0-5]\d", fullmatch=True), st.text(max_size=8)
)


@given(
    st.dictionaries(st.sampled_from(["mon-opens", "mon-closes", "sun-closes"]), _TIMES)
)
def test_opening_hours_form_gives_valid_hours_or_field_errors(form):
    """Whatever is typed, the result is hours the desk accepts, or errors on
    named fields; never an exception."""
    hours, errors = admin._parse_hours(form)
    if errors:
        assert set(errors) <= {
            f"{d}-{e}" for d in WEEKDAYS for e in ("opens", "closes")
        }
        return
    assert set(hours) == set(WEEKDAYS)
    for spec in hours.values():
        parse_hours(spec)


@given(
    st.dictionaries(
        st.sampled_from(
            ["other-nl", "other-en", "other-active", "new-code", "new-nl", "new-en"]
        ),
        st.text(max_size=120),
    )
)
def test_topics_form_gives_valid_topics_or_field_errors(form):
    topics, errors = admin._parse_topics(form, DEFAULT_TOPICS)
    if errors:
        assert set(errors) <= {
            "topics",
            "other-nl",
            "other-en",
            "new-code",
            "new-nl",
            "new-en",
        }
        return
    assert topics
    assert all(0 < len(t.nl) <= 100 and 0 < len(t.en) <= 100 for t in topics)
    assert len({t.code for t in topics}) == len(topics)


async def test_every_admin_and_sign_in_text_is_translated(sqlite_client):
    """No page shows a bare translation key, in Dutch or English."""
    client = sqlite_client
    await create(client, "agent", "some.agent")
    await sign_in(client, "admin")
    pages = [
        "/staff/admin",
        "/staff/admin/users/some.agent",
        "/staff/admin/topics",
        "/staff/admin/hours",
        "/staff/admin/audit",
        "/staff/admin/api-keys",
    ]
    bare_key = re.compile(r"\b(staff_auth|admin)_[a-z_]+\b")
    for lang in ("nl", "en"):
        for path in pages:
            response = await client.get(f"{path}?lang={lang}")
            assert response.status == 200, path
            html = await response.text()
            assert f'<html lang="{lang}">' in html
            assert not bare_key.search(html), (path, lang, bare_key.search(html))
        # the sign-in pages
        bad = await _post(
            client, "/staff/admin/hours", "/staff/admin/hours", {"mon-opens": "x"}
        )
        assert not bare_key.search(await bad.text())
    client.session.cookie_jar.clear()
    for lang in ("nl", "en"):
        html = await (await client.get(f"/staff/login?lang={lang}")).text()
        assert not bare_key.search(html)


async def test_navigation_shows_what_the_role_may_open(sqlite_client):
    client = sqlite_client
    nav = {}
    for role in ("agent", "supervisor", "admin"):
        client.session.cookie_jar.clear()
        await sign_in(client, role)
        html = await (await client.get("/staff/requests/new")).text()
        nav[role] = html.split('class="staff-nav"')[1].split("</nav>")[0]
        assert 'id="logout"' in nav[role]
        assert 'aria-current="page"' in nav[role]
    assert 'href="/staff/admin"' not in nav["agent"]
    assert 'href="/staff/admin/audit"' not in nav["agent"]
    assert 'href="/staff/admin"' not in nav["supervisor"]
    assert 'href="/staff/admin/audit"' in nav["supervisor"]
    assert 'href="/staff/admin"' in nav["admin"]
