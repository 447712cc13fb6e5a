"""How the citizen's pages and messages put days, slots and the next step in
words, in the citizen's language, on the desk's clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from beeldbel.config import WEEKDAYS, DeskConfig
from controlplane.base.i18n import CATALOG, Catalog, request_language
from controlplane.requests.slots import available_slots, local_day, local_time

Translate = Callable[..., str]


def translator(catalog: Catalog, lang: str) -> Translate:
    def t(key: str, **params: Any) -> str:
        return catalog.get(key, lang, **params)

    return t


def page_translator(request: web.Request) -> Translate:
    """``t()`` in the language of the page ``request`` asks for."""
    return translator(request.app[CATALOG], request_language(request))


def day_label(day: date, today: date | None, t: Translate) -> str:
    """``"Vandaag, vrijdag 27 november"``, or ``"maandag 30 november"`` in a
    sentence (``today`` None)."""
    text = t(
        "citizen_date",
        weekday=t(f"citizen_day_{WEEKDAYS[day.weekday()]}"),
        day=day.day,
        month=t(f"citizen_month_{day.month}"),
    )
    if today is None:
        return text
    relative = {today: "citizen_today", today + timedelta(days=1): "citizen_tomorrow"}
    if day in relative:
        text = f"{t(relative[day])}, {text}"
    return text[0].upper() + text[1:]


def today(desk: DeskConfig) -> date:
    return local_day(datetime.now(UTC), desk)


def when_text(slot_start: datetime | None, desk: DeskConfig, t: Translate) -> str:
    """When the desk will call: as soon as possible, or the slot in a sentence."""
    if slot_start is None:
        return t("citizen_confirmation_asap")
    return t(
        "citizen_confirmation_slot",
        day=day_label(local_day(slot_start, desk), None, t),
        start=local_time(slot_start, desk),
        end=local_time(slot_start + timedelta(minutes=desk.slot_minutes), desk),
    )


def next_steps(row: dict[str, Any], desk: DeskConfig, t: Translate) -> list[str]:
    """What happens next to a new request: how and when the desk calls."""
    phone: str | None = row["phone"]
    if row["channel"] == "video":
        how = t("citizen_confirmation_video")
    elif phone:
        how = t("citizen_confirmation_phone", digits=phone[-2:])
    else:
        how = t("citizen_confirmation_phone_generic")
    return [how, when_text(row["slot_start"], desk, t)]


def slot_groups(
    desk: DeskConfig, t: Translate, now: datetime | None = None
) -> list[dict[str, Any]]:
    """The slot select's option groups: one per day, with readable labels."""
    groups: list[dict[str, Any]] = []
    first_day = today(desk)
    step = timedelta(minutes=desk.slot_minutes)
    for start in available_slots(desk, now or datetime.now(UTC)):
        label = day_label(local_day(start, desk), first_day, t)
        if not groups or groups[-1]["label"] != label:
            groups.append({"label": label, "options": []})
        groups[-1]["options"].append(
            {
                "value": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "label": t(
                    "citizen_slot_range",
                    start=local_time(start, desk),
                    end=local_time(start + step, desk),
                ),
            }
        )
    return groups
