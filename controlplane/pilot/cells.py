"""One figure and the number of calls or requests it was built from, and the
small-number rule: a figure built from 1-4 of them shows "< 5", so nobody can
point at the citizen (or employee) behind it.

Suppression lives here, in the value itself, so whatever shows a figure (the
dashboard, an export, the report) inherits it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

#: Figures built from fewer calls or requests than this are not shown.
SMALL = 5
#: What a suppressed figure shows instead.
SUPPRESSED = "< 5"
#: What a statistic of nothing shows (no call or request to measure).
NO_DATA = "\u2013"  # en dash


@dataclass(frozen=True, slots=True)
class Cell:
    """``value`` (a count, a percentile, a mean…) built from ``n`` calls or
    requests. A count of none is shown (0 singles nobody out); 1-4 are not."""

    value: float | None
    n: int

    @classmethod
    def count(cls, n: int) -> Cell:
        return cls(n, n)

    @property
    def suppressed(self) -> bool:
        return 0 < self.n < SMALL

    @property
    def shown(self) -> float | None:
        """The value, or None when it is suppressed or there is none."""
        return None if self.suppressed else self.value

    def text(self, digits: int = 0) -> str:
        """The value as shown: rounded to ``digits``, "< 5" or :data:`NO_DATA`."""
        if self.suppressed:
            return SUPPRESSED
        if self.value is None:
            return NO_DATA
        return f"{self.value:.{digits}f}"

    def __str__(self) -> str:
        return self.text()


@dataclass(frozen=True, slots=True)
class Percentiles:
    """The median and the 90th percentile of ``n`` measurements."""

    p50: Cell
    p90: Cell

    @property
    def n(self) -> int:
        return self.p50.n

    @property
    def count(self) -> Cell:
        """How many measurements, as a cell of its own (suppressed alike)."""
        return Cell.count(self.p50.n)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank ``p``-th percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def percentiles(values: Sequence[float]) -> Percentiles:
    n = len(values)
    return Percentiles(Cell(percentile(values, 50), n), Cell(percentile(values, 90), n))


def mean(values: Sequence[float]) -> Cell:
    return Cell(sum(values) / len(values) if values else None, len(values))
