"""Join-link e-mail through a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from beeldbel.config import MailConfig, Secret
from controlplane.base.errors import DeliveryFailed
from controlplane.notify.mailer import send_link
from tests.controlplane.mail import Collector
from tests.helpers import free_port

LINK = "https://desk.example/gesprek#t=AbC-123_xyz0123456789abcdefghij"
ADDRESS = "burger.canary@example.org"


class Logins:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)


@pytest.fixture
def smtp() -> Iterator[tuple[Collector, Logins, int]]:
    collector, logins = Collector(), Logins()
    port = free_port()
    controller = Controller(
        collector,
        hostname="127.0.0.1",
        port=port,
        authenticator=logins,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield collector, logins, port
    finally:
        controller.stop()


def mail_config(port: int, **changes: Any) -> MailConfig:
    values: dict[str, Any] = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": "desk@beeldbel.example",
        "timeout_seconds": 5,
    }
    values.update(changes)
    return MailConfig(**values)


@pytest.mark.parametrize(
    ("lang", "subject", "phrase"),
    [
        ("nl", "Uw videogesprek met Politie", "werkt maar één keer"),
        ("en", "Your video call with Politie", "works only once"),
    ],
)
async def test_message_arrives_with_link_intact_in_the_right_language(
    smtp, lang, subject, phrase
):
    collector, _, port = smtp
    await send_link(mail_config(port), ADDRESS, LINK, lang, "Politie")
    (mail_from, rcpts, message) = collector.messages[0]
    assert (mail_from, rcpts) == ("desk@beeldbel.example", [ADDRESS])
    assert message["Subject"] == subject
    assert LINK not in message["Subject"]
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None
    assert rich is not None
    text = plain.get_content()
    assert LINK in text.splitlines()
    assert phrase in text
    assert f'href="{LINK}"' in rich.get_content()
    assert f'lang="{lang}"' in rich.get_content()


async def test_login_is_used_when_configured(smtp):
    collector, logins, port = smtp
    config = mail_config(port, username="desk", password=Secret("s3cret"))
    await send_link(config, ADDRESS, LINK, "nl", "Politie")
    assert logins.seen == [("desk", "s3cret")]
    assert len(collector.messages) == 1


async def test_server_down_is_delivery_failed_and_nothing_personal_logged(capsys):
    with pytest.raises(DeliveryFailed) as failed:
        await send_link(mail_config(free_port()), ADDRESS, LINK, "nl", "X")
    assert failed.value.message == "delivery_mail_failed"
    assert failed.value.status == 502
    logged = capsys.readouterr()
    assert "join_link_mail_failed" in logged.out + logged.err
    assert ADDRESS not in logged.out + logged.err
    assert "#t=" not in logged.out + logged.err


async def test_disabled_mail_refuses(smtp):
    collector, _, port = smtp
    with pytest.raises(DeliveryFailed, match="delivery_mail_disabled"):
        await send_link(
            mail_config(port, enabled=False), ADDRESS, LINK, "nl", "Politie"
        )
    assert collector.messages == []


def test_config_refuses_bad_values():
    with pytest.raises(ValueError, match="security"):
        MailConfig(security="ssl")
    with pytest.raises(ValueError, match="sender"):
        MailConfig(sender="nobody")
