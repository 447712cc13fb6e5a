"""The audit log page (issue 12): filters by period, employee and action, readable
action names and details in Dutch and English, and a CSV export of the filtered
rows that a spreadsheet cannot run as formulas. Viewing and exporting are audited
themselves. Through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from controlplane.app.factory import create_app
from controlplane.requests import DESK
from controlplane.security import audit
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log
from tests.controlplane.audit_entries import audited
from tests.controlplane.sample_requests import NAME, add_request
from tests.controlplane.staff_accounts import create, sign_in

PAGE = "/staff/admin/audit"
CANARY_MAIL = "audit.canary@example.org"
CSV = "/staff/admin/audit.csv"


@pytest.fixture
async def sqlite_client(aiohttp_client: Any, make_config: Any, sqlite_url: str) -> Any:
    return await aiohttp_client(create_app(make_config(sqlite_url)))


async def _seed(client: Any) -> None:
    """Entries of two employees on two days: claims, a role change, a note with
    a value a spreadsheet would run, and one of a code no label knows."""
    old = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
    async with client.server.app[DB].write() as conn:
        seeded: tuple[tuple[str, str, dict[str, Any]], ...] = (
            ("anna", "request_claimed", {}),
            ("bert", "request_claimed", {}),
            ("bert", "user_role_changed", {"target": "carla", "role": "supervisor"}),
            ("bert", "some_future_action", {"reason": "=HYPERLINK(1)"}),
            ("bert", "=cmd()", {}),
        )
        for who, action, details in seeded:
            await audit.record(conn, action, username=who, **details)
        await conn.execute(
            sa.insert(audit_log).values(
                at=old, username="anna", action="request_claimed", details={}
            )
        )


def _rows(html: str) -> list[str]:
    body = html.split('id="audit-entries"')[1].split("<tbody>")[1]
    return body.split("</tbody>")[0].split("<tr")[1:]


async def test_filters_narrow_the_rows_with_readable_names(client):
    await sign_in(client, "supervisor")
    await _seed(client)
    everything = await (await client.get(PAGE)).text()
    assert "Verzoek opgepakt" in everything
    assert "Rol gewijzigd" in everything
    assert "some_future_action" in everything  # unknown: the code itself
    assert "Account: carla" in everything
    assert "{" not in "".join(_rows(everything))  # text, not JSON
    anna = await (await client.get(PAGE, params={"employee": "anna"})).text()
    assert len(_rows(anna)) == 2
    zone = ZoneInfo(client.server.app[DESK].current.timezone)
    today = datetime.now(zone).date().isoformat()
    recent = {"employee": "anna", "from": today, "to": today}
    assert len(_rows(await (await client.get(PAGE, params=recent)).text())) == 1
    early = {"from": "2026-11-01", "to": "2026-11-02"}
    assert len(_rows(await (await client.get(PAGE, params=early)).text())) == 1
    role = {"action": "user_role_changed"}
    assert len(_rows(await (await client.get(PAGE, params=role)).text())) == 1
    english = await (await client.get(PAGE, params={"lang": "en"})).text()
    assert "Request claimed" in english
    assert "Role changed" in english
    viewed = await audited(client, "audit_viewed")
    assert {"employee": "anna", "from": today, "to": today} in viewed


async def test_csv_export_holds_the_filtered_rows_safely(client):
    await sign_in(client, "admin")
    await _seed(client)
    rid, reference = await add_request(client.server.app[DB], email=CANARY_MAIL)
    async with client.server.app[DB].write() as conn:
        await audit.record(conn, "request_claimed", username="bert", request_id=rid)
    response = await client.get(CSV, params={"employee": "bert"})
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Cache-Control"] == "no-store"
    rows = list(csv.reader(io.StringIO(await response.text())))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["tijd", "medewerker", "actie", "omschrijving"]
    assert len(body) == 5
    assert {row[1] for row in body} == {"bert"}
    assert "Reden: =HYPERLINK(1)" in {row[-1] for row in body}
    # a cell a spreadsheet would run as a formula gets a leading quote
    assert "'=cmd()" in {row[2] for row in body}
    for row in body:
        assert all(not cell.startswith(("=", "+", "-", "@")) for cell in row), row
    # the request's reference, none of the citizen's data
    assert reference in {row[4] for row in body}
    text = await response.text()
    assert all(canary not in text for canary in (NAME, CANARY_MAIL, "612345678"))
    assert await audited(client, "audit_exported") == [{"employee": "bert", "rows": 5}]


async def test_bad_filters_get_a_message_and_agents_a_403(sqlite_client):
    client = sqlite_client
    await sign_in(client, "admin")
    for params in (
        {"from": "2026-13-01"},
        {"to": "gisteren"},
        {"from": "2026-11-05", "to": "2026-11-01"},
    ):
        page = await client.get(PAGE, params=params)
        assert page.status == 400, params
        assert 'class="error-summary"' in await page.text()
        export = await client.get(CSV, params=params)
        assert export.status == 400, params
    english = await client.get(PAGE, params={"from": "x", "lang": "en"})
    assert "date" in (await english.text()).lower()
    client.session.cookie_jar.clear()
    await create(client, "agent", "some.agent")
    await sign_in(client, "agent")
    assert (await client.get(PAGE)).status == 403
    assert (await client.get(CSV)).status == 403


async def test_the_page_offers_the_export_of_what_it_shows(sqlite_client):
    client = sqlite_client
    await sign_in(client, "supervisor")
    await _seed(client)
    before = datetime.now(UTC) - timedelta(days=1)
    params = {"employee": "anna", "from": before.date().isoformat()}
    html = await (await client.get(PAGE, params=params)).text()
    assert 'id="audit-export"' in html
    link = html.split('id="audit-export" href="')[1].split('"')[0]
    assert "employee=anna" in link
    assert link.startswith(CSV)
