"""Sending a call's join links: the citizen's (at the start, or a new one from
the call page) to the request's e-mail address or phone, and an interpreter's to
the address or number the employee types, which is used once and never stored.

Each delivery is told to the employee's page as ``link_sent`` or ``link_failed``
(with ``via`` and, for the interpreter, ``role``); a failure is shown, not
raised. Addresses, numbers and links never reach a log line or the audit log.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from controlplane.base.errors import DeliveryFailed, ValidationFailed
from controlplane.base.i18n import CATALOG
from controlplane.base.settings import CONFIG
from controlplane.calls.live_state import CALLS
from controlplane.calls.rooms import Call
from controlplane.notify import mailer, sms
from controlplane.requests import DESK, Request, normalize_email, normalize_phone
from controlplane.security.ratelimit import LIMITS


@dataclass
class Delivery:
    """Which ways a link went (``email``, ``sms``) and which failed."""

    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def reply(self) -> dict[str, list[str]]:
        return {"sent": self.sent, "failed": self.failed}


@dataclass(frozen=True, slots=True)
class Recipient:
    """Where a link goes, and in which words and language."""

    email: str | None
    phone: str | None
    lang: str
    role: str = "citizen"


def citizen(item: Request, *, email: bool, sms_too: bool) -> Recipient:
    """The request's own address and number, as far as the employee chose them."""
    return Recipient(
        email=item.email if email else None,
        phone=item.phone if sms_too else None,
        lang=item.language,
    )


def interpreter(body: dict[str, Any], lang: str) -> Recipient:
    """The interpreter's address or number from the call page's JSON body; a
    422 naming the field when it cannot take a link."""
    errors: dict[str, str] = {}
    email = _clean(body.get("email"), normalize_email, "email", errors)
    phone = _clean(body.get("phone"), normalize_phone, "phone", errors)
    if errors:
        raise ValidationFailed("calls_interpreter_invalid", details=errors)
    return Recipient(email=email, phone=phone, lang=lang, role="interpreter")


def _clean(
    value: Any, normal: Callable[[str], str], name: str, errors: dict[str, str]
) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            return normal(value)
        except ValueError:
            pass
    errors[name] = f"calls_interpreter_{name}_invalid"
    return None


async def count_messages(app: web.Application, call: Call, to: Recipient) -> None:
    """Count what ``to`` would get against the call's limit before a link is
    made for it: :class:`RateLimited` when over, and then nothing is counted."""
    ways = bool(to.email) + bool(to.phone)
    if ways:
        await app[LIMITS].messages_per_call.hit(call.room_id, cost=ways)


async def deliver(
    app: web.Application, call: Call, link: str, to: Recipient
) -> Delivery:
    """Send ``link`` each way ``to`` has; each outcome is told to the page."""
    done = Delivery()
    config, desk = app[CONFIG], app[DESK].current.name
    catalog = app[CATALOG]
    words = "mail_join" if to.role == "citizen" else "mail_interpreter"
    if to.email:
        await _attempt(
            app,
            call,
            to,
            done,
            "email",
            mailer.send_link(config.mail, to.email, link, to.lang, desk, texts=words),
        )
    if to.phone:
        key = "sms_join_text" if to.role == "citizen" else "sms_interpreter_text"
        text = catalog.get(key, to.lang, desk=desk, link=link)
        await _attempt(
            app, call, to, done, "sms", sms.send_sms(config.sms, to.phone, text)
        )
    return done


async def _attempt(
    app: web.Application,
    call: Call,
    to: Recipient,
    done: Delivery,
    via: str,
    sending: Awaitable[None],
) -> None:
    events = app[CALLS].events
    role = {} if to.role == "citizen" else {"role": to.role}
    try:
        await sending
    except DeliveryFailed as exc:
        done.failed.append(via)
        await events.publish(
            call.room_id, "link_failed", via=via, reason=exc.message, **role
        )
        return
    done.sent.append(via)
    await events.publish(call.room_id, "link_sent", via=via, **role)
