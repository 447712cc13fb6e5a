"""The citizen's survey link after a phone callback, sent when the employee ticks
it while completing the callback: by e-mail when the citizen gave an address,
otherwise (or when the e-mail fails) by SMS to a mobile number.

It is sent before the employee moves on to their own survey, so the employee
hears at once whether it went (``sent``, ``failed`` or ``none``: no way to send).
Each try is audited with codes only (``survey_link_sent``/``_failed`` and the
way), never the address, number or link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from controlplane.base.errors import DeliveryFailed
from controlplane.base.i18n import CATALOG
from controlplane.base.settings import CONFIG
from controlplane.notify import mailer, sms
from controlplane.requests import DESK, Actor, Request
from controlplane.security import audit
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.security.survey_links import survey_url
from controlplane.storage.database import DB

log = structlog.get_logger()

Send = Callable[[web.Application, Request, str], Awaitable[None]]


async def send_survey_link(app: web.Application, item: Request, by: Actor) -> str:
    """Send ``item``'s citizen the survey link; ``sent``, ``failed`` or ``none``."""
    config = app[CONFIG]
    ways: list[tuple[str, Send]] = []
    if item.email and config.mail.enabled:
        ways.append(("email", _mail))
    if item.phone and config.sms.enabled and sms.can_take_sms(item.phone):
        ways.append(("sms", _text))
    if not ways:
        log.info("survey_link_skipped", request_id=item.id)
        return "none"
    link = survey_url(config.server.public_url, app[SECRET_KEY], item.id, item.language)
    for via, send in ways:
        try:
            await send(app, item, link)
        except DeliveryFailed as exc:
            await _record(app, item, by, "survey_link_failed", via, exc.message)
            continue
        await _record(app, item, by, "survey_link_sent", via)
        return "sent"
    return "failed"


async def _mail(app: web.Application, item: Request, link: str) -> None:
    assert item.email is not None  # noqa: S101 (checked by the caller)
    await mailer.send_link(
        app[CONFIG].mail,
        item.email,
        link,
        item.language,
        app[DESK].current.name,
        catalog=app[CATALOG],
        texts="mail_survey",
        kind="survey_link",
    )


async def _text(app: web.Application, item: Request, link: str) -> None:
    assert item.phone is not None  # noqa: S101 (checked by the caller)
    desk_name = app[DESK].current.name
    text = sms.join_link_text(
        link, item.language, desk_name, catalog=app[CATALOG], key="sms_survey_text"
    )
    await sms.send_sms(app[CONFIG].sms, item.phone, text)


async def _record(
    app: web.Application,
    item: Request,
    by: Actor,
    action: str,
    via: str,
    reason: str | None = None,
) -> None:
    details = {"via": via} if reason is None else {"via": via, "reason": reason}
    log.info(action, request_id=item.id, **details)
    async with app[DB].write() as conn:
        await audit.record(
            conn,
            action,
            user_id=by.id,
            username=by.username,
            request_id=item.id,
            **details,
        )
