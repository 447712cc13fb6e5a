"""Bar charts drawn on the server as SVG: no script, no chart service.

A chart is grouped bars, one group per category (a day, an answer) and one bar
per series. A suppressed cell ("< 5") is drawn as a dashed outline up to 5, so
the chart tells no more than its table. Every chart stands next to a table of
the same cells (the templates), which is its text alternative.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from controlplane.pilot.cells import SMALL, Cell

#: Series colours: each at least 3:1 against white (WCAG 1.4.11) and apart from
#: the others; the legend names them, so colour is never the only cue there.
COLOURS = ("#1f5fa8", "#b54a00", "#2b7a3d", "#6b3fa0")
#: Charts wider than this (px) keep their size and scroll sideways in their
#: region; narrower ones scale to the width of the page.
WIDE = 640
_BAR, _GAP, _LEFT, _TOP, _HEIGHT, _BOTTOM = 14, 10, 40, 12, 150, 34


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    cells: tuple[Cell, ...]


@dataclass(frozen=True, slots=True)
class Chart:
    """``series`` over ``categories`` (their labels under the bars)."""

    id: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]


def _scale_top(chart: Chart) -> int:
    """A top for the y axis above every bar whose four grid steps are whole
    numbers (counts have no halves)."""
    values = [
        SMALL if c.suppressed else (c.value or 0) for s in chart.series for c in s.cells
    ]
    top = max([4.0, *values])
    step = 10 ** math.floor(math.log10(top))
    nice = next(n * step for n in (1, 2, 5, 10) if top <= n * step)
    return int(math.ceil(nice / 4) * 4)


def width_of(chart: Chart) -> int:
    group = len(chart.series) * _BAR + _GAP
    return _LEFT + max(1, len(chart.categories)) * group + _GAP


def svg(chart: Chart, labelled_by: str) -> Markup:
    """The chart as an ``<svg role="img">`` named by the element ``labelled_by``."""
    top = _scale_top(chart)
    width = width_of(chart)
    height = _TOP + _HEIGHT + _BOTTOM
    fits = "wide" if width > WIDE else "fits"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart {fits}" '
        f'id="{escape(chart.id)}" aria-labelledby="{escape(labelled_by)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
    ]
    parts += _axis(top, width)
    group = len(chart.series) * _BAR + _GAP
    every = max(1, math.ceil(len(chart.categories) / 16))
    for i, category in enumerate(chart.categories):
        x = _LEFT + _GAP + i * group
        for j, series in enumerate(chart.series):
            parts.append(_bar(series.cells[i], x + j * _BAR, top, COLOURS[j % 4]))
        if i % every == 0:
            middle = x + len(chart.series) * _BAR / 2
            parts.append(
                f'<text x="{middle:.0f}" y="{_TOP + _HEIGHT + 16}" '
                f'text-anchor="middle">{escape(category)}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every value above is escaped)


def _axis(top: int, width: int) -> list[str]:
    """Four grid lines with their values, and the base line."""
    lines = []
    for k in range(5):
        value = top * k / 4
        y = _TOP + _HEIGHT - _HEIGHT * k / 4
        label = f"{value:.0f}"
        lines.append(
            f'<line class="grid" x1="{_LEFT}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{label}</text>'
        )
    return lines


def _bar(cell: Cell, x: float, top: int, colour: str) -> str:
    base = _TOP + _HEIGHT
    if cell.suppressed:
        h = _HEIGHT * SMALL / top
        return (
            f'<rect class="suppressed" x="{x + 1:.1f}" y="{base - h:.1f}" '
            f'width="{_BAR - 2}" height="{h:.1f}" stroke="{colour}"/>'
        )
    h = _HEIGHT * (cell.value or 0) / top
    return (
        f'<rect x="{x + 1:.1f}" y="{base - h:.1f}" width="{_BAR - 2}" '
        f'height="{h:.1f}" fill="{colour}"/>'
    )


def legend_colours(series: Sequence[Series]) -> list[tuple[str, str]]:
    """(label, colour) of each series, for the legend under a chart."""
    return [(s.label, COLOURS[i % 4]) for i, s in enumerate(series)]
