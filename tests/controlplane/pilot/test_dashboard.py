"""The dashboard at /staff/dashboard through the real app, on SQLite and
PostgreSQL: who may see it, the seeded week's figures (groups under 5 show
"< 5"), bad periods, and the live counts on its event stream."""

from __future__ import annotations

import asyncio
import html as markup
import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from controlplane.app.factory import create_app
from controlplane.pilot import dashboard
from controlplane.pilot.cells import Cell
from controlplane.pilot.charts import Chart, Series, svg
from controlplane.requests import QUEUE_EVENTS
from controlplane.storage.database import DB
from controlplane.storage.schema import call_records, callback_requests, media_nodes
from tests.controlplane.pilot.seeded_figures import FIRST, LAST, seed_week
from tests.controlplane.sample_requests import NAME, add_request
from tests.controlplane.staff_accounts import sign_in
from tests.helpers import csrf_from, read_event, wait_for

WEEK = f"/staff/dashboard?period=range&from={FIRST}&to={LAST}"


@pytest.fixture
async def sqlite_client(aiohttp_client, make_config, sqlite_url):
    """For HTTP behaviour that does not depend on the database backend."""
    return await aiohttp_client(create_app(make_config(sqlite_url)))


def figure(html: str, name: str) -> str:
    """The text of the element with ``data-figure="name"``."""
    found = re.search(rf'data-figure="{re.escape(name)}"[^>]*>\s*([^<]*?)\s*<', html)
    assert found, f"no figure {name!r} on the page"
    return markup.unescape(found.group(1))


async def test_supervisors_and_admins_only(client):
    signed_out = await client.get("/staff/dashboard", allow_redirects=False)
    assert signed_out.status == 303
    assert signed_out.headers["Location"].startswith("/staff/login")
    await sign_in(client, "agent")
    refused = await client.get("/staff/dashboard")
    assert refused.status == 403
    events = await client.get(
        "/staff/dashboard/live", headers={"Accept": "text/event-stream"}
    )
    assert events.status == 403


async def test_the_nav_links_the_dashboard_for_a_supervisor(sqlite_client):
    await sign_in(sqlite_client, "supervisor")
    page = await sqlite_client.get("/staff")
    assert 'href="/staff/dashboard"' in await page.text()
    response = await sqlite_client.get("/staff/dashboard")
    assert response.status == 200
    assert 'aria-current="page"' in await response.text()


async def test_the_seeded_week_with_small_groups_suppressed(client):
    await sign_in(client, "admin")
    await seed_week(client.server.app[DB])
    response = await client.get(WEEK)
    assert response.status == 200
    html = await response.text()
    expected = {
        "requests-total": "15",
        "requests-source-web": "12",
        "requests-source-phone": "< 5",
        "requests-source-api": "< 5",
        "requests-choice-video": "8",
        "requests-choice-phone": "7",
        "requests-source-web-2026-11-03": "6",
        "requests-source-web-2026-11-05": "< 5",
        "first-attempt-all-p50": "4 min",
        "first-attempt-all-p90": "10 min",
        "first-attempt-phone-p50": "< 5",
        "first-attempt-all-n": "8",
        "first-attempt-phone-n": "< 5",
        "join-to-picture-n": "5",
        "rtt-n": "6",
        "outcome-video-resolved": "5",
        "outcome-phone-no_answer": "< 5",
        "video-started": "6",
        "video-admitted": "5",
        "video-first_picture": "5",
        "video-ended_normally": "< 5",
        "video-failed": "< 5",
        "switch-technical_problem": "< 5",
        "join-to-picture-p50": "3.0 s",
        "join-to-picture-p90": "5.0 s",
        "connection-direct": "5",
        "connection-relay": "< 5",
        "rtt-p50": "42 ms",
        "device-camera": "< 5",
        "device-microphone": "0",
        "interpreter-calls": "< 5",
        "asked-sign_language": "15",
        "survey-citizen-video-answered": "5",
        "survey-citizen-video-ease-mean": "4.2",
        "survey-citizen-phone-answered": "< 5",
        "survey-citizen-phone-ease-mean": "< 5",
        "survey-employee-video-answered": "< 5",
        "survey-citizen-video-would_use_again-yes": "< 5",
    }
    shown = {name: figure(html, name) for name in expected}
    assert shown == expected
    assert NAME not in html, "a page of figures holds no personal data"
    charts = re.findall(r'<svg [^>]*role="img"[^>]*aria-labelledby="([^"]+)"', html)
    assert len(charts) == 4, "requests by source and by choice, two surveys"
    for title in charts:
        assert f'id="{title}"' in html, "each chart is named by its caption"


async def test_english_and_the_period_choices(sqlite_client):
    await sign_in(sqlite_client, "supervisor")
    for period in ("today", "7d", "pilot"):
        response = await sqlite_client.get(f"/staff/dashboard?period={period}")
        assert response.status == 200, period
    english = await (await sqlite_client.get(WEEK + "&lang=en")).text()
    assert "Requests per day by source" in english


async def test_a_bad_period_is_a_422_in_the_page_language(sqlite_client):
    await sign_in(sqlite_client, "supervisor")
    bad = await sqlite_client.get(
        "/staff/dashboard?period=range&from=2026-02-30&to=2026-03-01"
    )
    assert bad.status == 422
    html = await bad.text()
    assert "Vul een bestaande datum in" in html
    assert 'aria-invalid="true"' in html
    english = await sqlite_client.get(
        "/staff/dashboard?period=range&from=2026-03-02&to=2026-03-01&lang=en"
    )
    assert english.status == 422
    assert "The first day is after the last day" in await english.text()
    unknown = await sqlite_client.get("/staff/dashboard?period=%00year")
    assert unknown.status == 422
    ancient = await sqlite_client.get(
        "/staff/dashboard?period=range&from=0001-01-01&to=0001-01-02"
    )
    assert ancient.status == 422
    assert "between 2000 and 2099" in await ancient.text()  # English, as chosen


async def test_live_counts_on_the_page(client):
    await sign_in(client, "supervisor")
    db = client.server.app[DB]
    now = datetime.now(UTC)
    await add_request(db, channel="phone")
    old_id, _ = await add_request(db)
    async with db.write() as conn:
        await conn.execute(
            sa.update(callback_requests)
            .where(callback_requests.c.id == old_id)
            .values(due_at=now - timedelta(minutes=12))
        )
        await conn.execute(
            media_nodes.insert().values(
                node_id="media-9",
                capacity=40,
                rooms=3,
                participants=7,
                cpu=0.25,
                state="up",
                draining=False,
                last_seen=now,
            )
        )
        await conn.execute(
            call_records.insert().values(
                room_id="live-room-1", channel="video", started_at=now
            )
        )
    html = await (await client.get("/staff/dashboard")).text()
    shown = {
        name: figure(html, name)
        for name in (
            "live-waiting",
            "live-waiting-video-asap",
            "live-waiting-phone-asap",
            "live-oldest-wait",
            "live-video-calls",
            "live-staff-online",
            "live-node-media-9-rooms",
        )
    }
    assert shown == {
        "live-waiting": "2",
        "live-waiting-video-asap": "1",
        "live-waiting-phone-asap": "1",
        "live-oldest-wait": "12 min",
        "live-video-calls": "1",
        "live-staff-online": "1",
        "live-node-media-9-rooms": "3 / 40",
    }


async def test_the_live_stream_follows_a_new_request(client):
    """An open dashboard gets fresh live counts without a reload."""
    await sign_in(client, "supervisor")
    response = await client.get(
        "/staff/dashboard/live", headers={"Accept": "text/event-stream"}
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    first = await asyncio.wait_for(read_event(response, "live"), 5)
    assert figure(first["html"], "live-waiting") == "0"

    await add_request(client.server.app[DB])
    client.server.app[QUEUE_EVENTS].publish()

    async def pushed() -> bool:
        event = await asyncio.wait_for(read_event(response, "live"), 5)
        return figure(event["html"], "live-waiting") == "1"

    await wait_for(pushed, timeout=10, message="the new request on the stream")
    response.close()


def test_a_chart_tells_no_more_than_its_table():
    """A suppressed cell is a dashed outline up to 5, the same for 1 and 4."""

    def drawn(n: int) -> str:
        chart = Chart("c", ("a", "b"), (Series("s", (Cell.count(n), Cell.count(8))),))
        return str(svg(chart, "c-title"))

    assert drawn(1) == drawn(4)
    assert drawn(1).count('class="suppressed"') == 1
    assert drawn(5).count('class="suppressed"') == 0
    assert 'role="img"' in drawn(1)
    assert 'aria-labelledby="c-title"' in drawn(1)


async def test_a_long_period_folds_its_day_tables(sqlite_client):
    await sign_in(sqlite_client, "supervisor")
    week = await (await sqlite_client.get(WEEK)).text()
    assert week.count('<details class="day-table" open>') == 2
    long = "/staff/dashboard?period=range&from=2026-09-01&to=2026-11-08"
    html = await (await sqlite_client.get(long)).text()
    assert html.count('<details class="day-table">') == 2
    assert 'data-figure="requests-source-web-2026-09-01"' in html


async def test_the_report_and_exports_of_the_same_period(sqlite_client):
    await sign_in(sqlite_client, "supervisor")
    html = await (await sqlite_client.get(WEEK)).text()
    query = f"period=range&amp;from={FIRST}&amp;to={LAST}"
    for path in ("/staff/report", "/staff/report.pdf", "/staff/export/calls.csv"):
        assert f'href="{path}?{query}"' in html, path
    week = await (await sqlite_client.get("/staff/dashboard")).text()
    assert 'href="/staff/report?period=7d"' in week


async def test_the_live_stream_ends_so_the_session_is_checked_again(
    sqlite_client, monkeypatch
):
    """The browser reconnects a stream that ended; a signed-out one is refused."""
    monkeypatch.setattr(dashboard, "STREAM_SECONDS", 0.5)
    await sign_in(sqlite_client, "supervisor")
    events = {"Accept": "text/event-stream"}
    response = await sqlite_client.get("/staff/dashboard/live", headers=events)
    await asyncio.wait_for(read_event(response, "live"), 5)
    await asyncio.wait_for(response.content.read(), 5)  # the stream ends
    page = await (await sqlite_client.get("/staff/dashboard")).text()
    await sqlite_client.post("/staff/logout", data={"csrf_token": csrf_from(page)})
    again = await sqlite_client.get("/staff/dashboard/live", headers=events)
    assert again.status == 401
