"""The pilot's evidence: what citizens and staff think of a call (surveys), the
figures of a period with small numbers suppressed (:mod:`.figures`), and the
dashboard that shows them beside the live counts of the desk; the exports
without personal data and the report (page and PDF) for the decision.

Offers :func:`setup` for the survey pages, the dashboard, the exports and the
report.
"""

from aiohttp import web

from controlplane.pilot import dashboard, exports, phone_surveys, report, surveys


def setup(app: web.Application) -> None:
    """The routes and background work of pilot."""
    surveys.setup(app)
    phone_surveys.setup(app)
    dashboard.setup(app)
    exports.setup(app)
    report.setup(app)


__all__ = ["setup"]
