"""The survey answers on the 1-5 scale, counted from the call records for the
metrics (:class:`~controlplane.base.metrics.SurveyScores`) at each scrape."""

from __future__ import annotations

import sqlalchemy as sa

from controlplane.base.metrics import SURVEY_QUESTIONS, Metrics
from controlplane.storage.database import Database
from controlplane.storage.schema import call_records

#: The column of each question's answer.
_COLUMNS = {
    ("citizen", "ease"): call_records.c.citizen_ease,
    ("citizen", "av_quality"): call_records.c.citizen_av_quality,
    ("employee", "quality"): call_records.c.employee_quality,
}


async def refresh_survey_scores(db: Database, metrics: Metrics) -> None:
    """Count the stored answers by channel and score, question by question."""
    counts: dict[tuple[str, str, str], dict[int, int]] = {}
    async with db.read() as conn:
        for respondent, question in SURVEY_QUESTIONS:
            column = _COLUMNS[respondent, question]
            rows = await conn.execute(
                sa.select(call_records.c.channel, column, sa.func.count())
                .where(column.is_not(None))
                .group_by(call_records.c.channel, column)
            )
            for channel, score, count in rows:
                key = (str(channel), respondent, question)
                counts.setdefault(key, {})[int(score)] = int(count)
    metrics.survey_scores.counts = counts
