"""The whole video-call system as real processes, for browser stories.

``live_call_system`` starts the control plane (HTTPS, dev CA, SQLite) and the media
server (plain HTTP signalling on loopback, one UDP port, advertising 127.0.0.1),
sharing one config file: the media server fetches the control plane's JWKS over
HTTPS trusting the dev CA, and the control plane creates rooms with the shared
``api_secret``. A real SMTP server (aiosmtpd) on loopback keeps every e-mail.
Import the fixture into a test module: ``from tests.e2e.call_system import
live_call_system``. Run inside ``unshare -n`` (loopback only).
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, Page, expect

from beeldbel.cli.devca import ensure_dev_certificates
from tests.controlplane.staff_accounts import add_staff_to
from tests.e2e.conftest import ROOT, assert_accessible, new_page, wait_until_up
from tests.helpers import beeldbel_cli, free_port, free_udp_port, wait_for

API_SECRET = "e2e-media-api-secret-0123456789"
NODE = "media-e2e"
PASSWORD = "correct horse battery staple 42"
_LINK = re.compile(r"https://\S+/gesprek#t=[A-Za-z0-9_-]+")


class Mailbox:
    """aiosmtpd handler: every accepted message, parsed."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), parsed))
        return "250 OK"

    async def link_for(self, address: str, timeout: float = 10.0) -> str:  # noqa: ASYNC109
        """The join link in the first e-mail to ``address`` that carries one (waits
        for it; the confirmation of the request came before, with its status link)."""

        def first() -> str | None:
            for to, message in self.messages:
                body = message.get_body(("plain",))
                found = _LINK.search(body.get_content()) if body is not None else None
                if address in to and found:
                    return found.group(0)
            return None

        await wait_for(first, timeout, f"a join link to {address} at the SMTP server")
        link = first()
        assert link is not None
        return link


@dataclass
class CallSystem:
    base_url: str
    db_url: str
    ca_file: Path
    media_url: str
    mailbox: Mailbox
    tmp_path: Path
    #: The control plane's /metrics listener (plain HTTP on loopback).
    metrics_url: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    async def add_staff(self, username: str, role: str = "agent") -> str:
        """A staff account with :data:`PASSWORD`; returns its TOTP secret."""
        config = self.tmp_path / "beeldbel.toml"
        return await add_staff_to(self.db_url, config, username, role, PASSWORD)


def _config_text(
    tmp_path: Path,
    certs: Any,
    port: int,
    media_port: int,
    smtp_port: int,
    metrics_port: int = 0,
) -> str:
    base = f"https://127.0.0.1:{port}"
    return f"""
[server]
port = {port}
public_url = "{base}"
data_dir = "{tmp_path / "data"}"
[tls]
cert_file = "{certs.cert_file}"
key_file = "{certs.key_file}"
[database]
url = "sqlite+aiosqlite:///{tmp_path / "beeldbel.sqlite3"}"
[metrics]
port = {metrics_port}
[logging]
format = "json"
[mail]
enabled = true
host = "127.0.0.1"
port = {smtp_port}
security = "none"
sender = "beeldbel@desk.test"
timeout_seconds = 5
[mediaserver]
host = "127.0.0.1"
port = {media_port}
node_id = "{NODE}"
udp_port = {free_udp_port()}
udp_bind = "127.0.0.1"
advertised_address = "127.0.0.1"
jwks_url = "{base}/.well-known/jwks.json"
jwks_ca_file = "{certs.ca_file}"
token_issuer = "{base}"
api_secret = "{API_SECRET}"
workers = 1
[calls]
media_api_url = "http://127.0.0.1:{media_port}"
media_ws_url = "ws://127.0.0.1:{media_port}/ws"
test_hooks = true
"""


def _start(
    module: str, config_file: Path, log_file: Path
) -> tuple[subprocess.Popen[bytes], Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEELDBEL_")}
    log = log_file.open("wb")
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", module, "--config", str(config_file)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    return process, log


async def _wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:

        async def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"{url}: process exited with {process.returncode}")
            try:
                async with session.get(url) as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(up, 30, f"{url} to come up")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
async def live_call_system(tmp_path: Path) -> AsyncIterator[CallSystem]:
    """Control plane + media server processes, and an SMTP server, on loopback."""
    certs = ensure_dev_certificates(tmp_path / "certs")
    port, media_port, smtp_port = free_port(), free_port(), free_port()
    metrics_port = free_port()
    mailbox = Mailbox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    config_file = tmp_path / "beeldbel.toml"
    config_file.write_text(
        _config_text(tmp_path, certs, port, media_port, smtp_port, metrics_port),
        encoding="utf-8",
    )
    code, out = await beeldbel_cli(config_file, "migrate")
    assert code == 0, f"beeldbel migrate failed: {out}"
    system = CallSystem(
        base_url=f"https://127.0.0.1:{port}",
        db_url=f"sqlite+aiosqlite:///{tmp_path / 'beeldbel.sqlite3'}",
        ca_file=certs.ca_file,
        media_url=f"http://127.0.0.1:{media_port}",
        mailbox=mailbox,
        tmp_path=tmp_path,
        metrics_url=f"http://127.0.0.1:{metrics_port}/metrics",
    )
    logs = []
    try:
        control, log = _start("controlplane", config_file, tmp_path / "control.log")
        system.processes.append(control)
        logs.append(log)
        await wait_until_up(system.base_url + "/privacy", certs.ca_file, control)
        media, log = _start("mediaserver", config_file, tmp_path / "media.log")
        system.processes.append(media)
        logs.append(log)
        await _wait_http(system.media_url + "/healthz", media)
        yield system
    finally:
        for process in reversed(system.processes):
            _stop(process)
        for log in logs:
            log.close()
        smtp.stop()


async def staff_login(
    page: Page, base_url: str, username: str, secret: str, *, check: bool = False
) -> None:
    """Sign in through the real pages: password, then the TOTP code; with
    ``check``, axe-core checks the login, code and queue pages."""
    await page.goto(base_url + "/staff")
    await expect(page.locator("#username")).to_be_visible()
    if check:
        await assert_accessible(page, "staff login")
    await page.fill("#username", username)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#totp-code")).to_be_visible()
    if check:
        await assert_accessible(page, "TOTP step")
    await page.fill("#totp-code", pyotp.TOTP(secret).now())
    await page.click("#totp-submit")
    await expect(page.locator("#queue")).to_be_visible()
    if check:
        await assert_accessible(page, "queue")


async def request_video_callback(
    system: CallSystem,
    browser: Browser,
    email: str,
    *,
    name: str = "Fatima de Vries",
    check_pages: bool = False,
) -> str:
    """A citizen asks for a video callback as soon as possible through the form;
    the reference the confirmation shows. ``check_pages``: axe on the form and
    the confirmation."""
    citizen = await new_page(browser)
    await citizen.goto(system.base_url + "/")
    if check_pages:
        await assert_accessible(citizen, "callback form")
    await citizen.fill("#name", name)
    await citizen.fill("#phone", "06-12345678")
    await citizen.fill("#email", email)
    await citizen.select_option("#topic", "report_crime")
    await citizen.check("#channel-video")
    await citizen.check("#preferred-asap")
    await citizen.check("#consent")
    await citizen.click("#submit-request")
    reference_box = citizen.locator("#reference")
    await expect(reference_box).to_have_text(re.compile(r"BB-[A-Z0-9]{4}-[A-Z0-9]{4}"))
    if check_pages:
        await assert_accessible(citizen, "confirmation")
    reference = (await reference_box.inner_text()).strip()
    await citizen.context.close()
    return reference
