"""The pilot's exports: calls and requests as CSV and XLSX, with no personal data."""

from __future__ import annotations

import csv
import html
import io
import zipfile
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from controlplane.base.i18n import CATALOG
from controlplane.requests import DESK
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log, callback_requests
from tests.controlplane import staff_accounts as staff
from tests.controlplane.pilot.pilot_data import CANARIES, seed_pilot


def today_in_desk_zone(client: Any) -> str:
    zone = ZoneInfo(client.server.app[DESK].current.timezone)
    return datetime.now(zone).date().isoformat()


def assert_no_canary(data: bytes, what: str) -> None:
    for canary in CANARIES:
        assert canary.encode() not in data, f"{what} holds {canary!r}"


def rows_of(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"))))


async def export(client, name: str, **query: str) -> Any:
    return await client.get(f"/staff/export/{name}", params=query)


@pytest.mark.parametrize("name", ["calls.csv", "requests.csv"])
async def test_csv_exports_hold_codes_and_no_personal_data(client, name):
    seeded = await seed_pilot(client.server.app[DB])
    await staff.sign_in(client, "supervisor")
    day = today_in_desk_zone(client)

    response = await export(client, name, period="range", **{"from": day, "to": day})

    assert response.status == 200, await response.text()
    assert response.content_type == "text/csv"
    assert response.charset == "utf-8"
    table = name.split(".")[0]
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="beeldbel-{table}-{day}-{day}.csv"'
    )
    body = await response.read()
    assert_no_canary(body, name)
    for reference in [*seeded.references, seeded.old_reference]:
        assert reference.encode() not in body, "the reference identifies a case"
    rows = rows_of(body)
    if table == "calls":
        video = [r for r in rows if r["channel"] == "video"]
        (phone,) = [r for r in rows if r["channel"] == "phone"]
        assert len(video) == len(seeded.record_ids)
        assert {r["outcome"] for r in video} == {"completed"}
        assert {r["duration_s"] for r in video} == {"300"}
        assert sorted(r["citizen_ease"] for r in video) == [
            "1",
            "1",
            "2",
            "3",
            "4",
            "5",
        ]
        assert {r["employee_case_handled"] for r in video} == {"yes"}
        assert {r["connection_type"] for r in video} == {"direct", "relay"}
        assert (phone["duration_s"], phone["employee_case_handled"]) == (
            "240",
            "partly",
        )
        assert phone["join_to_first_picture_ms"] == ""
        assert "citizen_comment" not in rows[0]
        # times to the minute, in UTC
        assert all(len(r["started_at_utc"]) == len("2026-05-01 09:30") for r in rows)
    else:
        # the request from 40 days ago is outside the period
        assert len(rows) == len(seeded.request_ids)
        assert {r["channel"] for r in rows} == {"video", "phone"}
        assert {r["source"] for r in rows} == {"web"}
        assert {r["accessibility"] for r in rows} == {"sign_language"}


async def test_calls_and_requests_join_on_a_pseudonym(client):
    await seed_pilot(client.server.app[DB], calls=2)
    await staff.sign_in(client, "admin")
    whole = {"period": "pilot"}
    calls = rows_of(await (await export(client, "calls.csv", **whole)).read())
    requests = rows_of(await (await export(client, "requests.csv", **whole)).read())

    pseudonyms = {r["request"] for r in requests}
    assert len(pseudonyms) == 4  # two with video calls, the phone one, the old one
    assert {c["request"] for c in calls} <= pseudonyms
    assert all(p.startswith("R-") and len(p) == 12 for p in pseudonyms)
    again = rows_of(await (await export(client, "requests.csv", **whole)).read())
    assert {r["request"] for r in again} == pseudonyms, "stable across exports"


async def test_xlsx_exports_hold_no_personal_data(client):
    seeded = await seed_pilot(client.server.app[DB])
    await staff.sign_in(client, "supervisor")
    for name in ("calls.xlsx", "requests.xlsx"):
        response = await export(client, name)
        assert response.status == 200, await response.text()
        assert response.content_type == (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        )
        assert response.headers["Content-Disposition"].endswith('.xlsx"')
        with zipfile.ZipFile(io.BytesIO(await response.read())) as book:
            xml = b"".join(book.read(member) for member in book.namelist())
        assert_no_canary(xml, name)
        assert seeded.references[0].encode() not in xml
        assert b"sign_language" in xml or b"completed" in xml


async def test_a_cell_that_starts_a_formula_is_defused(client):
    """A topic an admin named ``=HYPERLINK(...)`` must not run in a spreadsheet."""
    db = client.server.app[DB]
    await seed_pilot(db, calls=1)
    async with db.write() as conn:
        await conn.execute(sa.update(callback_requests).values(topic="=1+2"))
    await staff.sign_in(client, "supervisor")

    rows = rows_of(await (await export(client, "requests.csv")).read())

    assert {r["topic"] for r in rows} == {"'=1+2"}
    response = await export(client, "requests.xlsx")
    with zipfile.ZipFile(io.BytesIO(await response.read())) as book:
        sheet = book.read("xl/worksheets/sheet1.xml")
    assert b"<f>" not in sheet, "no formula in the workbook"


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ({"from": "2026-13-01", "to": "2026-12-01"}, "pilot_error_date_invalid"),
        ({"from": "2026-05-01", "to": "gisteren"}, "pilot_error_date_invalid"),
        ({"from": "2026-05-01"}, "pilot_error_date_missing"),
        ({"from": "2026-05-02", "to": "2026-05-01"}, "pilot_error_range_order"),
        ({"from": "2000-01-01", "to": "2099-12-31"}, "pilot_error_range_long"),
    ],
)
@pytest.mark.parametrize("lang", ["nl", "en"])
async def test_a_bad_period_is_a_400_in_the_page_language(client, query, key, lang):
    """The same checks as the dashboard's period, with its messages."""
    await staff.sign_in(client, "supervisor")

    response = await export(client, "calls.csv", period="range", lang=lang, **query)

    assert response.status == 400
    catalog = client.server.app[CATALOG]
    assert key in catalog
    assert html.escape(catalog.get(key, lang)) in await response.text()
    other = await export(client, "requests.xlsx", period="sometimes")
    assert other.status == 400


async def test_unknown_exports_are_404(client):
    await staff.sign_in(client, "supervisor")
    for name in ("calls.pdf", "users.csv", "calls.csv.xlsx"):
        assert (await export(client, name)).status == 404, name


async def test_agents_may_not_export_and_strangers_sign_in_first(client):
    response = await export(client, "calls.csv")
    assert [r.status for r in response.history] == [303]
    assert response.url.path == "/staff/login"
    await staff.sign_in(client, "agent")
    assert (await export(client, "calls.csv")).status == 403
    assert (await export(client, "requests.xlsx")).status == 403


async def test_each_export_is_audited_with_codes_only(client):
    await seed_pilot(client.server.app[DB], calls=1)
    user = await staff.sign_in(client, "supervisor")
    day = today_in_desk_zone(client)

    await export(client, "calls.xlsx", period="range", **{"from": day, "to": day})

    async with client.server.app[DB].read() as conn:
        entry = (
            await conn.execute(
                sa.select(audit_log).where(audit_log.c.action == "pilot_exported")
            )
        ).one()
    assert entry.user_id == user.id
    assert entry.details == {
        "table": "calls",
        "format": "xlsx",
        "period": "range",
        "first": day,
        "last": day,
        "rows": 2,  # the video call and the phone callback
    }
