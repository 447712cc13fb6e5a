"""E-mail with a citizen's join link, sent over SMTP (``[mail]`` in the config).

The message holds only what the citizen needs: the desk's name, the link and how
to get help. Neither the address nor the link is ever logged; a failure is
raised as :class:`DeliveryFailed` with a message key staff can be shown.
"""

from __future__ import annotations

import functools
import html
from collections.abc import Callable
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
) -> EmailMessage:
    """The e-mail (plain text with an HTML alternative) carrying ``link``."""
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE

    def t(key: str) -> str:
        return catalog.get(key, lang, desk=desk_name)

    message = EmailMessage()
    message["Subject"] = t("mail_join_subject")
    message["From"] = config.sender
    message["To"] = to_address
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=config.sender.rpartition("@")[2])
    message["Content-Language"] = lang
    message["Auto-Submitted"] = "auto-generated"
    paragraphs = [t("mail_join_once"), t("mail_join_help")]
    text = "\n\n".join(
        [t("mail_join_greeting"), t("mail_join_body"), link, *paragraphs, desk_name]
    )
    message.set_content(text + "\n")
    message.add_alternative(_html(lang, t, link, paragraphs, desk_name), subtype="html")
    return message


def _html(
    lang: str,
    t: Callable[[str], str],
    link: str,
    paragraphs: list[str],
    desk_name: str,
) -> str:
    esc = html.escape
    body = "".join(f"<p>{esc(p)}</p>" for p in paragraphs)
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        f"<title>{esc(t('mail_join_subject'))}</title></head><body>"
        f"<p>{esc(t('mail_join_greeting'))}</p>"
        f"<p>{esc(t('mail_join_body'))}</p>"
        f'<p><a href="{esc(link)}">{esc(t("mail_join_button"))}</a></p>'
        f"<p>{esc(link)}</p>{body}<p>{esc(desk_name)}</p></body></html>"
    )


async def send_join_link(
    config: MailConfig,
    to_address: str,
    link: str,
    lang: str,
    desk_name: str,
    *,
    catalog: Catalog | None = None,
) -> None:
    """Send the join link to ``to_address``; :class:`DeliveryFailed` if it fails."""
    if not config.enabled:
        raise DeliveryFailed("delivery_mail_disabled")
    message = join_link_message(
        config,
        catalog or _default_catalog(),
        to_address=to_address,
        link=link,
        lang=lang,
        desk_name=desk_name,
    )
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
        log.warning("join_link_mail_failed", error=type(exc).__name__)
        raise DeliveryFailed("delivery_mail_failed") from None
    log.info("join_link_mailed", lang=lang)
