"""The pilot report: a page for supervisors and admins, and the same page as PDF."""

from __future__ import annotations

import asyncio
import html
import io
import os
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pypdf import PdfReader

from controlplane.base.i18n import CATALOG
from controlplane.pilot.cells import Cell
from controlplane.pilot.figures import PilotFigures, period_figures
from controlplane.pilot.periods import Period
from controlplane.pilot.report import static_path
from controlplane.requests import DESK
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log
from tests.controlplane import staff_accounts as staff
from tests.controlplane.pilot.pilot_data import CANARIES, seed_pilot

SCREENSHOTS = os.environ.get("SCREENSHOTS_DIR")


def today_period(client: Any) -> Period:
    zone = client.server.app[DESK].current.timezone
    today = datetime.now(ZoneInfo(zone)).date()
    return Period(today, today, zone, "range")


def query_of(period: Period, **more: str) -> dict[str, str]:
    days = {"from": period.first.isoformat(), "to": period.last.isoformat()}
    return {"period": "range", **days, **more}


def keep(data: bytes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def pdf_text(data: bytes) -> str:
    """Every page's text, its white space folded to single spaces."""
    reader = PdfReader(io.BytesIO(data))
    text = " ".join(page.extract_text() or "" for page in reader.pages)
    return re.sub(r"\s+", " ", text)


#: Rows of the report (label key) and the dashboard cell (data-figure) that
#: shows the same figure, with the figure's n.
SAME_FIGURES = (
    ("report_requests_total", "requests-total", lambda f: f.requests.total),
    ("report_video_started", "video-started", lambda f: f.video.started),
    (
        "report_video_first_picture",
        "video-first_picture",
        lambda f: f.video.first_picture,
    ),
    (
        "report_video_ended_normally",
        "video-ended_normally",
        lambda f: f.video.ended_normally,
    ),
    (
        "report_join_to_picture_p50",
        "join-to-picture-p50",
        lambda f: f.video.join_to_first_picture.p50,
    ),
    (
        "report_join_to_picture_p90",
        "join-to-picture-p90",
        lambda f: f.video.join_to_first_picture.p90,
    ),
    ("report_rtt_p50", "rtt-p50", lambda f: f.video.rtt_ms.p50),
    ("report_loss_p50", "loss-p50", lambda f: f.video.loss_pct.p50),
    (
        "report_connection_relay",
        "connection-relay",
        lambda f: f.video.connections["relay"],
    ),
    (
        "report_connection_direct",
        "connection-direct",
        lambda f: f.video.connections["direct"],
    ),
    (
        "report_question_citizen_ease",
        "survey-citizen-video-ease-mean",
        lambda f: _mean(f, "citizen"),
    ),
    (
        "report_question_employee_quality",
        "survey-employee-video-quality-mean",
        lambda f: _mean(f, "employee"),
    ),
)
_FIGURE_CELL = re.compile(r'<(?:td|strong) data-figure="([^"]+)"[^>]*>([^<]*)<')


def _mean(figures: PilotFigures, respondent: str) -> Cell:
    mean = figures.surveys.group(respondent, "video").questions[0].mean
    assert mean is not None
    return mean


async def dashboard_cells(client: Any, period: Period, lang: str) -> dict[str, str]:
    """What the dashboard shows for ``period``: its cells by data-figure."""
    page = await client.get("/staff/dashboard", params=query_of(period, lang=lang))
    assert page.status == 200, await page.text()
    text = await page.text()
    return {
        name: html.unescape(value).strip() for name, value in _FIGURE_CELL.findall(text)
    }


async def expected_rows(client: Any, period: Period, lang: str) -> list[str]:
    """ "label value n": each figure of :data:`SAME_FIGURES` as the dashboard
    shows it for the same period, with its n ("< 5" when the figure is)."""
    catalog = client.server.app[CATALOG]
    shown = await dashboard_cells(client, period, lang)
    figures = await period_figures(client.server.app[DB], period)
    rows = []
    for key, figure, cell_of in SAME_FIGURES:
        assert key in catalog, key
        cell = cell_of(figures)
        n = "< 5" if cell.suppressed else str(cell.n)
        rows.append(f"{catalog.get(key, lang)} {shown[figure]} {n}")
    return rows


async def test_the_pdf_holds_the_dashboards_figures_and_no_personal_data(client):
    db = client.server.app[DB]
    seeded = await seed_pilot(db)
    await staff.sign_in(client, "supervisor")
    period = today_period(client)

    response = await client.get("/staff/report.pdf", params=query_of(period))

    assert response.status == 200, await response.text()
    assert response.content_type == "application/pdf"
    day = period.first.isoformat()
    assert response.headers["Content-Disposition"] == (
        f'attachment; filename="beeldbel-report-{day}-{day}.pdf"'
    )
    data = await response.read()
    assert data.startswith(b"%PDF-")
    if SCREENSHOTS:  # for a person to look at, as the browser tests' pages
        await asyncio.to_thread(keep, data, Path(SCREENSHOTS) / "pilot-report.pdf")
    text = pdf_text(data)
    for canary in CANARIES:
        assert canary not in text, f"the PDF holds {canary!r}"
        assert canary.encode() not in data
    for reference in seeded.references:
        assert reference not in text
    catalog = client.server.app[CATALOG]

    assert catalog.get("report_title", "nl") in text
    assert f"{day} \N{EN DASH} {day}" in text
    rows = await expected_rows(client, period, "nl")
    for row in rows:
        assert row in text, f"{row!r} not in the PDF:\n{text}"
    relay = catalog.get("report_connection_relay", "nl")
    assert f"{relay} < 5 < 5" in text, "a small n is hidden with its figure"


async def test_the_report_page_shows_the_same_rows_in_english(client):
    db = client.server.app[DB]
    await seed_pilot(db)
    await staff.sign_in(client, "admin")
    period = today_period(client)

    response = await client.get("/staff/report", params=query_of(period, lang="en"))

    assert response.status == 200
    page = await response.text()
    for canary in CANARIES:
        assert canary not in page
    flat = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))
    for row in await expected_rows(client, period, "en"):
        assert row in flat, row
    untranslated = re.findall(r"\b(?:report|pilot|dashboard|console)_[a-z_0-9]+", flat)
    assert not untranslated, "a key without a text shows as the key"
    assert 'href="/staff/report.pdf?' in page
    assert "/staff/export/calls.csv?" in page


async def test_the_pdf_download_is_audited(client):
    user = await staff.sign_in(client, "supervisor")
    period = today_period(client)

    response = await client.get("/staff/report.pdf", params=query_of(period))

    assert response.status == 200
    async with client.server.app[DB].read() as conn:
        entry = (
            await conn.execute(
                sa.select(audit_log).where(
                    audit_log.c.action == "pilot_report_downloaded"
                )
            )
        ).one()
    assert entry.user_id == user.id
    day = period.first.isoformat()
    assert entry.details == {"period": "range", "first": day, "last": day}


@pytest.mark.parametrize("path", ["/staff/report", "/staff/report.pdf"])
async def test_agents_get_403_and_bad_periods_400(client, path):
    await staff.sign_in(client, "agent")
    assert (await client.get(path)).status == 403
    await staff.sign_in(client, "supervisor", "boss")
    bad = await client.get(path, params={"period": "range", "from": "2026-02-30"})
    assert bad.status == 400
    assert "text/html" in bad.headers["Content-Type"]


def test_the_pdf_fetches_nothing_but_static_files():
    """WeasyPrint follows the page's links: only the site's own static files
    answer, so a link in the page can never reach the network or the disk."""
    base = "http://127.0.0.1"
    found = static_path(f"{base}/static/css/report.css?v=abc", base)
    assert found.name == "report.css"
    for url in (
        "https://example.org/static/css/report.css",
        "file:///etc/passwd",
        "http://127.0.0.1/staff/report",
        "http://127.0.0.1/static/../../pyproject.toml",
        "http://127.0.0.1/static/%2e%2e/%2e%2e/pyproject.toml",
        "http://127.0.0.1/static/css/",
    ):
        with pytest.raises(ValueError, match="static file"):
            static_path(url, base)


async def test_without_pango_the_pdf_is_a_503_that_says_so(client, monkeypatch):
    """WeasyPrint loads Debian's Pango when imported: on a machine without it
    (``make run`` installs it, a hand-made venv may not) the page still works
    and the PDF says what is missing instead of failing with a 500."""
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # import fails as without
    await staff.sign_in(client, "supervisor")

    assert (await client.get("/staff/report")).status == 200
    response = await client.get("/staff/report.pdf", params={"lang": "en"})

    assert response.status == 503
    catalog = client.server.app[CATALOG]
    page = html.unescape(await response.text())
    assert catalog.get("report_pdf_unavailable", "en") in page


async def test_the_pdf_is_tagged_for_screen_readers(client):
    """PDF/UA-1: a structure tree (headings, tables), marked content, the page's
    language and its title, so a screen reader can read the report as well."""
    await staff.sign_in(client, "supervisor")

    response = await client.get("/staff/report.pdf", params={"lang": "en"})

    reader = PdfReader(io.BytesIO(await response.read()))
    root: Any = reader.trailer["/Root"]
    assert root["/MarkInfo"]["/Marked"]
    assert "/StructTreeRoot" in root
    assert root["/Lang"] == "en"
    assert reader.metadata is not None
    assert reader.metadata.title is not None
    assert reader.metadata.title.startswith("Pilot report")
