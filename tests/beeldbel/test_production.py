"""Leaving the laptop: dev certificates only for a loopback public_url, no password
in any log, and dev certificates with extra names for a lab."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
import ssl
import stat
import sys
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
import trustme
from cryptography import x509

from controlplane.staff.auth import verify_password
from controlplane.storage.database import Database
from controlplane.storage.schema import users
from tests.helpers import beeldbel_cli, wait_for
from tests.one_machine import read_until, run_config

PUBLIC = "desk.example.test"
COMMAND = Path(sys.executable).parent / "beeldbel"


def _public_config(tmp_path: Path) -> tuple[Path, int]:
    """``run_config`` with a public_url that is not loopback."""
    path, port, _media_port = run_config(tmp_path)
    text = path.read_text(encoding="utf-8").replace(
        f'public_url = "https://127.0.0.1:{port}"',
        f'public_url = "https://{PUBLIC}:{port}"',
    )
    path.write_text(text, encoding="utf-8")
    return path, port


def _certs(tmp_path: Path) -> Path:
    return tmp_path / "var/certs"


async def _command(config: Path, *args: str) -> tuple[int, str, str]:
    """The installed ``beeldbel`` with ``args``: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        str(COMMAND),
        *("--config", str(config), *args),
        env={k: v for k, v in os.environ.items() if not k.startswith("BEELDBEL_")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()  # a start that should have been refused
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


# --- dev certificates refused for a public_url that is not loopback ---


@pytest.mark.parametrize("command", ["run", "controlplane"])
async def test_a_dev_certificate_is_refused_for_a_public_url(tmp_path, command):
    config, _port = _public_config(tmp_path)
    code, out = await beeldbel_cli(config, "certs", "dev")
    assert code == 0, out
    code, out, err = await _command(config, command)
    assert code == 2, out + err
    message = err.strip()
    assert message.startswith("beeldbel: [server] public_url"), err
    assert len(message.splitlines()) == 1, "one paragraph"
    for says in ("dev certificate", "[tls] cert_file", "[tls] key_file", PUBLIC):
        assert says in message
    assert "one-time password" not in out


async def test_run_makes_no_dev_certificate_for_a_public_url(tmp_path):
    config, _port = _public_config(tmp_path)
    code, out, err = await _command(config, "run")
    assert code == 2, out + err
    assert "does not exist" in err
    assert "[tls] cert_file" in err
    assert not _certs(tmp_path).exists()


# --- with a real certificate: starts, creates no admin, prints no password ---


def _real_certificate(tmp_path: Path) -> trustme.CA:
    """A certificate from another CA (trustme) at the configured [tls] paths."""
    ca = trustme.CA()
    cert = ca.issue_cert(PUBLIC, "127.0.0.1")
    _certs(tmp_path).mkdir(parents=True)
    cert.cert_chain_pems[0].write_to_path(str(_certs(tmp_path) / "server.crt"))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(_certs(tmp_path) / "server.crt"), append=True)
    cert.private_key_pem.write_to_path(str(_certs(tmp_path) / "server.key"))
    return ca


@pytest.mark.slow
async def test_run_with_a_real_certificate_creates_no_admin(tmp_path):
    """The first admin comes from `beeldbel admin user-add`; `run` says so."""
    config, port = _public_config(tmp_path)
    ca = _real_certificate(tmp_path)
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    process = await asyncio.create_subprocess_exec(
        str(COMMAND),
        *("--config", str(config), "run"),
        env={k: v for k, v in os.environ.items() if not k.startswith("BEELDBEL_")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stderr = asyncio.ensure_future(process.stderr.read())
    seen: list[str] = []
    try:
        await read_until(process.stdout, "Staff:", seen)
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                url = f"https://127.0.0.1:{port}/readyz"
                try:
                    async with session.get(url, ssl=trusting) as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(ready, 30, "the control plane with its real certificate")
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = "".join(seen)
    assert code == 0, (await stderr).decode()
    assert "beeldbel admin user-add" in output
    assert "password:" not in output
    assert "ca.crt" not in output, "no dev CA"
    assert not (_certs(tmp_path) / "ca.crt").exists()
    assert await _usernames(tmp_path) == []


async def _usernames(tmp_path: Path) -> list[str]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'var/beeldbel.sqlite3'}")
    try:
        async with db.read() as conn:
            rows = await conn.execute(sa.select(users.c.username))
            return [row.username for row in rows]
    finally:
        await db.close()


# --- beeldbel admin user-add: the password on its own output or in a file ---


def _is_log_line(line: str) -> bool:
    """A structlog line, as rendered for a console or as JSON."""
    return line.lstrip().startswith("{") or any(
        f"[{level}" in line for level in ("debug", "info", "warning", "error")
    )


async def test_user_add_shows_the_password_on_its_output_only(tmp_path):
    config, _port = _public_config(tmp_path)
    code, out, err = await _command(config, "admin", "user-add", "boss", "--role=admin")
    assert code == 0, err
    (line,) = [x for x in out.splitlines() if "one-time password" in x]
    password = line.rsplit(": ", 1)[1]
    assert len(password) >= 12
    assert password not in err
    assert out.count(password) == 1
    assert not any(password in x for x in out.splitlines() if _is_log_line(x))


async def test_user_add_writes_the_password_to_a_new_file(tmp_path):
    """For an init container, whose output is logged: nothing is printed."""
    config, _port = _public_config(tmp_path)
    secret = tmp_path / "admin-password"
    code, out, err = await _command(
        config, "admin", "user-add", "boss", "--role=admin", f"--password-file={secret}"
    )
    assert code == 0, err
    password = secret.read_text(encoding="utf-8").strip()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert password not in out + err
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'var/beeldbel.sqlite3'}")
    try:
        async with db.read() as conn:
            stored = (
                await conn.execute(
                    sa.select(users.c.password_hash).where(users.c.username == "boss")
                )
            ).scalar_one()
    finally:
        await db.close()
    assert (await verify_password(stored, password))[0]
    # an existing file is never overwritten, and then no account is made
    code, out, err = await _command(
        config, "admin", "user-add", "other", f"--password-file={secret}"
    )
    assert code == 1
    assert "--password-file" in err
    assert secret.read_text(encoding="utf-8").strip() == password
    assert sorted(await _usernames(tmp_path)) == ["boss"]


# --- beeldbel certs dev --name ---


def _san(cert_file: Path) -> set[str]:
    cert = x509.load_pem_x509_certificates(cert_file.read_bytes())[0]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(ip) for ip in san.get_values_for_type(x509.IPAddress)} | set(
        san.get_values_for_type(x509.DNSName)
    )


async def test_certs_dev_covers_extra_names(tmp_path):
    """A two-machine lab: one certificate for both machines' names."""
    config, _port, _media = run_config(tmp_path)
    cert_file = _certs(tmp_path) / "server.crt"
    code, out = await beeldbel_cli(config, "certs", "dev")
    assert code == 0, out
    assert _san(cert_file) == {"localhost", "127.0.0.1", "::1"}
    first_ca = (_certs(tmp_path) / "ca.crt").read_bytes()
    args = ("--name", "media.lab.test", "--name", "192.0.2.10", "--name", "fd00::5")
    code, out = await beeldbel_cli(config, "certs", "dev", *args)
    assert code == 0, out
    assert "new dev CA" in out
    assert _san(cert_file) == {
        "localhost",
        "127.0.0.1",
        "::1",
        "media.lab.test",
        "192.0.2.10",
        str(ipaddress.ip_address("fd00::5")),
    }
    lab_ca = (_certs(tmp_path) / "ca.crt").read_bytes()
    assert lab_ca != first_ca
    # names already covered: the same certificates, the CA browsers imported
    code, out = await beeldbel_cli(config, "certs", "dev", "--name", "192.0.2.10")
    assert code == 0, out
    assert "new dev CA" not in out
    assert (_certs(tmp_path) / "ca.crt").read_bytes() == lab_ca
    code, out = await beeldbel_cli(config, "certs", "dev", "--name", "not a name!")
    assert code == 1
    assert out.startswith("beeldbel: --name 'not a name!'")
