"""E-mail to citizens over SMTP (``[mail]`` in the config): a call's join link,
the confirmation of a new request with its status link, and the link to the
survey after a phone callback.

A message holds only what the citizen needs: the desk's name, the link and how
to get help. Neither the address nor the link is ever logged; a failure is
raised as :class:`DeliveryFailed` with a message key staff can be shown.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import aiosmtplib
import structlog

from beeldbel.config import MailConfig
from controlplane.base.errors import DeliveryFailed
from controlplane.base.i18n import DEFAULT_LANGUAGE, LANGUAGES, Catalog

log = structlog.get_logger()


@functools.cache
def _default_catalog() -> Catalog:
    return Catalog.load()


def join_link_message(
    config: MailConfig,
    catalog: Catalog,
    *,
    to_address: str,
    link: str,
    lang: str,
    desk_name: str,
    texts: str = "mail_join",
) -> EmailMessage:
    """The e-mail (plain text with an HTML alternative) carrying ``link``; its
    words are the ``{texts}_*`` keys (``mail_interpreter`` invites an interpreter,
    ``mail_survey`` asks for the survey after a phone callback)."""
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE

    def t(key: str) -> str:
        return catalog.get(f"{texts}_{key}", lang, desk=desk_name)

    return _message(
        config,
        Letter(
            to_address=to_address,
            lang=lang,
            subject=t("subject"),
            before=[t("greeting"), t("body")],
            link=link,
            button=t("button"),
            after=[t("once"), t("help")],
            signature=desk_name,
        ),
    )


def confirmation_message(
    config: MailConfig,
    catalog: Catalog,
    *,
    to_address: str,
    reference: str,
    link: str,
    details: list[str],
    lang: str,
    desk_name: str,
) -> EmailMessage:
    """The e-mail that confirms a new request: its reference, what happens next
    (``details``, already in ``lang``) and the status link."""
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE

    def t(key: str) -> str:
        return catalog.get(key, lang, desk=desk_name, reference=reference)

    return _message(
        config,
        Letter(
            to_address=to_address,
            lang=lang,
            subject=t("mail_confirmation_subject"),
            before=[
                t("mail_join_greeting"),
                t("mail_confirmation_body"),
                *details,
                t("mail_confirmation_status"),
            ],
            link=link,
            button=t("mail_confirmation_button"),
            after=[t("mail_confirmation_keep"), t("mail_confirmation_help")],
            signature=desk_name,
        ),
    )


@dataclass(frozen=True, slots=True)
class Letter:
    """What an e-mail says: paragraphs, then a link (a button in HTML), then more."""

    to_address: str
    lang: str
    subject: str
    before: list[str]
    link: str
    button: str
    after: list[str]
    signature: str


def _message(config: MailConfig, letter: Letter) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = letter.subject
    message["From"] = config.sender
    message["To"] = letter.to_address
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2])
    message["Content-Language"] = letter.lang
    message["Auto-Submitted"] = "auto-generated"
    text = "\n\n".join([*letter.before, letter.link, *letter.after, letter.signature])
    message.set_content(text + "\n")
    message.add_alternative(_html(letter), subtype="html")
    return message


def _html(letter: Letter) -> str:
    esc = html.escape

    def paragraphs(texts: list[str]) -> str:
        return "".join(f"<p>{esc(p)}</p>" for p in texts)

    return (
        f'<!doctype html><html lang="{letter.lang}"><head><meta charset="utf-8">'
        f"<title>{esc(letter.subject)}</title></head><body>"
        f"{paragraphs(letter.before)}"
        f'<p><a href="{esc(letter.link)}">{esc(letter.button)}</a></p>'
        f"<p>{esc(letter.link)}</p>{paragraphs(letter.after)}"
        f"<p>{esc(letter.signature)}</p></body></html>"
    )


async def send_link(
    config: MailConfig,
    to_address: str,
    link: str,
    lang: str,
    desk_name: str,
    *,
    catalog: Catalog | None = None,
    texts: str = "mail_join",
    kind: str = "join_link",
) -> None:
    """Send a link to ``to_address``; :class:`DeliveryFailed` if it fails.
    ``texts``: the catalog's prefix of its wording (a join link, an interpreter's,
    a survey's: ``mail_survey``); ``kind`` names it in the log."""
    message = join_link_message(
        config,
        catalog or _default_catalog(),
        to_address=to_address,
        link=link,
        lang=lang,
        desk_name=desk_name,
        texts=texts,
    )
    await _send(config, message, failed_event=f"{kind}_mail_failed")
    log.info(f"{kind}_mailed", lang=lang)


async def send_confirmation(
    config: MailConfig,
    to_address: str,
    reference: str,
    link: str,
    details: list[str],
    lang: str,
    desk_name: str,
    *,
    catalog: Catalog | None = None,
) -> None:
    """Confirm a new request to ``to_address``; :class:`DeliveryFailed` if not."""
    message = confirmation_message(
        config,
        catalog or _default_catalog(),
        to_address=to_address,
        reference=reference,
        link=link,
        details=details,
        lang=lang,
        desk_name=desk_name,
    )
    await _send(config, message, failed_event="confirmation_mail_failed")
    log.info("confirmation_mailed", lang=lang)


async def _send(
    config: MailConfig, message: EmailMessage, *, failed_event: str
) -> None:
    """Hand ``message`` to the mail server; :class:`DeliveryFailed` if not."""
    if not config.enabled:
        raise DeliveryFailed("delivery_mail_disabled")
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username or None,
            password=config.password.reveal() or None,
            use_tls=config.security == "tls",
            start_tls=config.security == "starttls",
            timeout=config.timeout_seconds,
        )
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        # the exception text may quote the address: log only its kind
        log.warning(failed_event, error=type(exc).__name__)
        raise DeliveryFailed("delivery_mail_failed") from None
