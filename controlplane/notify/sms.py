"""Text messages (join links, confirmations of new requests, survey links after
a phone callback) through the configured HTTP SMS gateway (``[sms]`` in the
config).

The gateway gets a JSON POST ``{"from", "to", "text"}`` with the configured
``Authorization`` header and must answer 2xx. Numbers, texts and links are never
logged; a failure is raised as :class:`DeliveryFailed`.
"""

from __future__ import annotations

import functools
import re

import aiohttp
import structlog

from beeldbel.config import SmsConfig
from controlplane.base.errors import DeliveryFailed
from controlplane.base.i18n import DEFAULT_LANGUAGE, LANGUAGES, Catalog

log = structlog.get_logger()

_E164 = re.compile(r"\+[1-9]\d{6,14}")


@functools.cache
def _default_catalog() -> Catalog:
    return Catalog.load()


def join_link_text(
    link: str,
    lang: str,
    desk_name: str,
    *,
    catalog: Catalog | None = None,
    key: str = "sms_join_text",
) -> str:
    """The SMS that carries a join link, in ``lang`` (Dutch when unknown); with
    ``key="sms_survey_text"`` the link to the survey after a phone callback."""
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
    return (catalog or _default_catalog()).get(key, lang, desk=desk_name, link=link)


def confirmation_text(
    reference: str,
    link: str,
    lang: str,
    desk_name: str,
    *,
    catalog: Catalog | None = None,
) -> str:
    """The SMS that confirms a new request with its status link."""
    lang = lang if lang in LANGUAGES else DEFAULT_LANGUAGE
    return (catalog or _default_catalog()).get(
        "sms_confirmation_text", lang, desk=desk_name, reference=reference, link=link
    )


def can_take_sms(e164: str) -> bool:
    """Whether a text message to ``e164`` can arrive: a Dutch number must be a
    mobile one (06, or 097 for machines); other countries' are tried."""
    return _E164.fullmatch(e164) is not None and (
        not e164.startswith("+31") or e164.startswith(("+316", "+3197"))
    )


async def send_sms(config: SmsConfig, to_e164: str, text: str) -> None:
    """Hand ``text`` for ``to_e164`` to the gateway; :class:`DeliveryFailed` if not."""
    if not config.enabled:
        raise DeliveryFailed("delivery_sms_disabled")
    if not _E164.fullmatch(to_e164):
        raise DeliveryFailed("delivery_bad_number")
    headers = {"Accept": "application/json"}
    if config.auth_header:
        headers["Authorization"] = config.auth_header.reveal()
    body = {"from": config.sender_id, "to": to_e164, "text": text}
    timeout = aiohttp.ClientTimeout(total=config.timeout_seconds)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(
                config.gateway_url, json=body, headers=headers, allow_redirects=False
            ) as response,
        ):
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("sms_failed", error=type(exc).__name__)
        raise DeliveryFailed("delivery_sms_failed") from None
    if not 200 <= status < 300:
        log.warning("sms_failed", status=status)
        raise DeliveryFailed("delivery_sms_failed")
    log.info("sms_sent", parts=(len(text) + 152) // 153)
