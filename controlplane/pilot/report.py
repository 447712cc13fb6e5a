"""The pilot report: the period's key figures, charts and survey results for the
decision on a rollout, with the n behind each figure; as a page and as PDF.

``GET /staff/report`` and ``GET /staff/report.pdf`` take the dashboard's period
(:func:`controlplane.pilot.exports.period_of`), for supervisors and admins. The
PDF is the same page laid out by WeasyPrint with its print stylesheet
(``css/report.css``); it fetches nothing but the site's own static files.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import structlog
from aiohttp import web

from beeldbel.assets import STATIC
from controlplane.base.errors import ControlPlaneError
from controlplane.base.rendering import page_context, render
from controlplane.base.settings import CONFIG
from controlplane.pilot.dashboard_view import figures_context
from controlplane.pilot.exports import audit_download, period_of
from controlplane.pilot.figures import OUTCOME_ROWS, period_figures
from controlplane.pilot.periods import Period
from controlplane.requests import DESK, SWITCH_REASONS
from controlplane.staff import StaffUser, require_staff
from controlplane.storage.database import DB

TEMPLATE = "pilot/report.html"


class PdfUnavailable(ControlPlaneError):
    """WeasyPrint cannot load here (Debian's Pango is missing: make pdf-deps)."""

    code = "pdf_unavailable"
    status = 503


log = structlog.get_logger()
# WeasyPrint warns on each PDF about the site's screen-only CSS it does not know
# (accent-color, prefers-reduced-motion…); its errors still reach the log
logging.getLogger("weasyprint").setLevel(logging.ERROR)
#: One PDF is laid out at a time: it takes a core for a second or so.
_PDF_TURN = web.AppKey("pilot_pdf_turn", asyncio.Semaphore)


def setup(app: web.Application) -> None:
    """Register the report page and its PDF."""
    app[_PDF_TURN] = asyncio.Semaphore(1)
    app.router.add_get("/staff/report", report_page, name="pilot_report")
    app.router.add_get("/staff/report.pdf", report_pdf, name="pilot_report_pdf")


async def _report(request: web.Request) -> tuple[StaffUser, Period, dict[str, Any]]:
    """The staff member, the period and what the template shows."""
    user = await require_staff(request, "supervisor")
    period = await period_of(request)
    figures = await period_figures(request.app[DB], period)
    zone = ZoneInfo(request.app[DESK].current.timezone)
    query = {k: v for k, v in request.query.items() if k in ("period", "from", "to")}
    context = {
        **figures_context(request, figures),
        "period": period,
        "made_at": datetime.now(zone).strftime("%Y-%m-%d %H:%M"),
        "outcome_rows": OUTCOME_ROWS,
        "switch_reasons": SWITCH_REASONS,
        "query": query,
    }
    return user, period, context


async def report_page(request: web.Request) -> web.Response:
    _user, _period, context = await _report(request)
    return render(request, TEMPLATE, {**context, "for_pdf": False})


async def report_pdf(request: web.Request) -> web.Response:
    """The report as PDF to save, audited (which period)."""
    user, period, context = await _report(request)
    html = with_svg_styles(
        aiohttp_jinja2.render_string(
            TEMPLATE, request, {**page_context(request), **context, "for_pdf": True}
        )
    )
    base_url = request.app[CONFIG].server.public_url
    async with request.app[_PDF_TURN]:
        pdf = await asyncio.to_thread(_layout, html, base_url)
    await audit_download(request, user, "pilot_report_downloaded", period)
    filename = f"beeldbel-report-{period.first}-{period.last}.pdf"
    return web.Response(
        body=pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


#: WeasyPrint draws an inline ``<svg>`` apart from the page: the page's
#: stylesheets do not reach into it, a ``<style>`` inside it does. These are the
#: chart rules of ``dashboard.css`` (dashed outlines for "< 5", grid, labels).
_SVG_STYLE = (
    "<style>.suppressed{fill:none;stroke-width:1.5;stroke-dasharray:3 2}"
    ".grid{stroke:#c8c8c8;stroke-width:1}"
    "text{font-size:11px;fill:#222;font-family:sans-serif}</style>"
)
_SVG_START = re.compile(r"(<svg\b[^>]*>)")


def with_svg_styles(html: str) -> str:
    """``html`` with :data:`_SVG_STYLE` at the start of every inline SVG."""
    return _SVG_START.sub(lambda m: m.group(1) + _SVG_STYLE, html)


def _layout(html: str, base_url: str) -> bytes:
    """The page as PDF (print media, so ``report.css``'s print rules apply).
    WeasyPrint is imported here: it needs Debian's Pango, which only this needs,
    so a machine without it serves everything but the PDF."""
    try:
        import weasyprint
    except (ImportError, OSError):
        log.exception("pdf_layout_unavailable")
        raise PdfUnavailable("report_pdf_unavailable") from None

    document = weasyprint.HTML(
        string=html, base_url=base_url, url_fetcher=static_fetcher(base_url)
    )
    # PDF/UA-1: tagged (headings, tables), with the page's language and title
    pdf: bytes = document.write_pdf(pdf_variant="pdf/ua-1")
    return pdf


def static_fetcher(base_url: str) -> Any:
    """A WeasyPrint URL fetcher that answers only ``base_url``'s ``/static/``
    paths, from the site's own files: the PDF never reaches the network."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class Fetcher(URLFetcher):  # type: ignore[misc]
        def fetch(self, url: str, headers: Any = None) -> URLFetcherResponse:
            path = static_path(url, base_url)
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(
                url, path.read_bytes(), headers={"Content-Type": kind}
            )

    return Fetcher()


def static_path(url: str, base_url: str) -> Path:
    """The static file ``url`` (on ``base_url``) names; ``ValueError`` for any
    other URL."""
    parts, base = urlsplit(url), urlsplit(base_url)
    path = unquote(parts.path)
    if (parts.scheme, parts.netloc) != (base.scheme, base.netloc) or not (
        path.startswith("/static/")
    ):
        raise ValueError(f"the report fetches only static files, not {url}")
    root = STATIC.resolve()
    found = (root / path.removeprefix("/static/")).resolve()
    if not found.is_relative_to(root) or not found.is_file():
        raise ValueError(f"no static file at {url}")
    return found
