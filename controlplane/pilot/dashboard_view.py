"""How the dashboard shows a period's figures: the charts it draws and the units
its cells are written in (the page's language), for ``pilot/dashboard.html``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from controlplane.base.i18n import CATALOG, request_language
from controlplane.pilot.call_figures import QUESTIONS, SURVEY_CHANNELS
from controlplane.pilot.cells import Cell
from controlplane.pilot.charts import Chart, Series, legend_colours, svg
from controlplane.pilot.figures import SOURCES, DayCounts, PilotFigures
from controlplane.requests import CHANNELS

#: The period form's fields, as in the query string.
FORM_FIELDS = ("period", "from", "to")


class Units:
    """A cell written with its unit in the page's language (a suppressed cell,
    or one of no data, as it is)."""

    def __init__(self, request: web.Request) -> None:
        self._catalog, self._lang = request.app[CATALOG], request_language(request)

    def _t(self, key: str, n: str) -> str:
        return self._catalog.get(key, self._lang, n=n)

    def count(self, cell: Cell) -> str:
        return cell.text()

    def seconds(self, cell: Cell) -> str:
        """A wait: seconds below 90 s, minutes below 90 min, else hours."""
        value = cell.shown
        if value is None:
            return cell.text()
        if value < 90:
            return self._t("dashboard_unit_seconds", n=f"{value:.0f}")
        if value < 90 * 60:
            return self._t("dashboard_unit_minutes", n=f"{value / 60:.0f}")
        return self._t("dashboard_unit_hours", n=f"{value / 3600:.1f}")

    def ms_as_seconds(self, cell: Cell) -> str:
        value = cell.shown
        if value is None:
            return cell.text()
        return self._t("dashboard_unit_seconds", n=f"{value / 1000:.1f}")

    def ms(self, cell: Cell) -> str:
        value = cell.shown
        return cell.text() if value is None else f"{value:.0f} ms"

    def percent(self, cell: Cell) -> str:
        value = cell.shown
        return cell.text() if value is None else f"{value:.1f} %"

    def mean(self, cell: Cell | None) -> str:
        return "" if cell is None else cell.text(1)


def _day(day: date) -> str:
    return day.strftime("%d-%m")


def _day_chart(name: str, counts: DayCounts, keys: tuple[str, ...], t: Any) -> Any:
    chart = Chart(
        f"chart-{name}",
        tuple(_day(d) for d in counts.days),
        tuple(Series(t(f"dashboard_{name}_{key}"), counts.series[key]) for key in keys),
    )
    return {"svg": svg(chart, f"{name}-title"), "legend": legend_colours(chart.series)}


def _survey_chart(figures: PilotFigures, respondent: str, t: Any) -> dict[str, Any]:
    """The answers to a respondent's first question (1-5), video beside phone."""
    question, answers = QUESTIONS[respondent][0]
    series = tuple(
        Series(
            t(f"dashboard_survey_channel_{channel}"),
            tuple(
                figures.surveys.group(respondent, channel).questions[0].counts[str(a)]
                for a in answers
            ),
        )
        for channel in SURVEY_CHANNELS
    )
    name = f"survey-{respondent}-{question}"
    chart = Chart(f"chart-{name}", tuple(str(a) for a in answers), series)
    return {"svg": svg(chart, f"{name}-title"), "legend": legend_colours(series)}


def figures_context(request: web.Request, figures: PilotFigures) -> dict[str, Any]:
    catalog, lang = request.app[CATALOG], request_language(request)

    def t(key: str) -> str:
        return catalog.get(key, lang)

    requests = figures.requests
    return {
        "figures": figures,
        "units": Units(request),
        "sources": SOURCES,
        "channels": CHANNELS,
        "survey_channels": SURVEY_CHANNELS,
        "questions": QUESTIONS,
        "day_label": _day,
        "charts": {
            "source": _day_chart("source", requests.by_source, SOURCES, t),
            "choice": _day_chart("choice", requests.by_choice, CHANNELS, t),
            "citizen": _survey_chart(figures, "citizen", t),
            "employee": _survey_chart(figures, "employee", t),
        },
    }
