"""The confirmation of a new request, by e-mail (a real SMTP server on loopback)
and as the text of an SMS."""

from __future__ import annotations

import pytest

from beeldbel.config import MailConfig
from controlplane.base.errors import DeliveryFailed
from controlplane.notify.mailer import send_confirmation
from controlplane.notify.sms import can_take_sms, confirmation_text
from tests.controlplane.mail import smtp
from tests.helpers import free_port

__all__ = ["smtp"]

ADDRESS = "burger.canary@example.org"
LINK = "https://desk.example/verzoek/BB-4K7Q-9M2X.AbCdEfGhIjKlMnOpQrStUv"
REFERENCE = "BB-4K7Q-9M2X"
DETAILS = ["Wij bellen u zo snel mogelijk, binnen onze openingstijden."]


def mail_config(port: int) -> MailConfig:
    return MailConfig(
        enabled=True, host="127.0.0.1", port=port, security="none", sender="d@b.test"
    )


@pytest.mark.parametrize(
    ("lang", "subject", "phrase"),
    [
        ("nl", "Uw terugbelverzoek BB-4K7Q-9M2X bij Politie", "zolang uw verzoek"),
        ("en", "Your callback request BB-4K7Q-9M2X with Politie", "as long as your"),
    ],
)
async def test_confirmation_mail_carries_reference_and_status_link(
    smtp, lang, subject, phrase
):
    collector, port = smtp
    await send_confirmation(
        mail_config(port), ADDRESS, REFERENCE, LINK, DETAILS, lang, "Politie"
    )
    (_mail_from, rcpts, message) = collector.messages[0]
    assert rcpts == [ADDRESS]
    assert message["Subject"] == subject
    plain = message.get_body(preferencelist=("plain",)).get_content()
    rich = message.get_body(preferencelist=("html",)).get_content()
    assert LINK in plain.splitlines()
    assert REFERENCE in plain
    assert DETAILS[0] in plain
    assert phrase in plain
    assert f'href="{LINK}"' in rich
    assert f'lang="{lang}"' in rich


async def test_confirmation_mail_failure_is_delivery_failed(capsys):
    with pytest.raises(DeliveryFailed, match="delivery_mail_failed"):
        await send_confirmation(
            mail_config(free_port()), ADDRESS, REFERENCE, LINK, DETAILS, "nl", "X"
        )
    logged = capsys.readouterr()
    assert "confirmation_mail_failed" in logged.out + logged.err
    assert ADDRESS not in logged.out + logged.err
    assert LINK not in logged.out + logged.err


def test_confirmation_sms_fits_one_message():
    # a desk's address of 30 characters; an English link opens in English
    link = (
        "https://beeldbel.gemeente-xyz.nl/verzoek/BB-4K7Q-9M2X.AbCdEfGhIjKlMnOpQrStUv"
    )
    for lang, word, url in (
        ("nl", "ontvangen", link),
        ("en", "received", link + "?lang=en"),
    ):
        text = confirmation_text(REFERENCE, url, lang, "Politie")
        assert url in text
        assert REFERENCE in text
        assert word in text
        # one GSM-7 text message: 160 characters, no characters outside it
        assert len(text) <= 160, len(text)
        assert text.isascii()


def test_only_numbers_that_take_a_text_message_get_one():
    assert can_take_sms("+31612345678")
    assert can_take_sms("+3197012345678")
    assert can_take_sms("+32470123456")
    assert not can_take_sms("+31201234567"), "a Dutch landline"
    assert not can_take_sms("0612345678")
