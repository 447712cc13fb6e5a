"""What stops a start stops it in one line that names the key, never a traceback:
a bad config value, a missing TLS file, a database that cannot be opened."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL, SKIP_POSTGRES
from tests.helpers import beeldbel_cli, free_port


def _one_line(output: str) -> str:
    """The whole output, which must be one line and no traceback."""
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


async def test_a_bad_value_stops_run_in_one_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[security]\nlockout_threshold = 0\n", encoding="utf-8")
    code, output = await beeldbel_cli(path, "run")
    assert code != 0
    line = _one_line(output)
    assert "[security]" in line
    assert "lockout_threshold" in line


def _missing_tls_config(tmp_path: Path) -> Path:
    path = tmp_path / "beeldbel.toml"
    missing = tmp_path / "nowhere"
    path.write_text(
        f"""
[server]
port = {free_port()}
data_dir = "{tmp_path / "var"}"
[tls]
cert_file = "{missing / "server.crt"}"
key_file = "{missing / "server.key"}"
[database]
url = "sqlite+aiosqlite:///{tmp_path / "var/b.sqlite3"}"
[metrics]
port = 0
[mediaserver]
port = {free_port()}
udp_port = 0
api_secret = "a-media-api-secret-for-this-test"
tls_cert_file = "{missing / "media.crt"}"
tls_key_file = "{missing / "media.key"}"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("command", "key", "file"),
    [
        ("controlplane", "[tls] cert_file", "server.crt"),
        ("mediaserver", "[mediaserver] tls_cert_file", "media.crt"),
    ],
)
async def test_a_missing_tls_file_stops_the_start_naming_key_and_path(
    tmp_path, command, key, file
):
    path = _missing_tls_config(tmp_path)
    code, output = await beeldbel_cli(path, command)
    assert code != 0
    line = _one_line(output)
    assert key in line
    assert str(tmp_path / "nowhere" / file) in line


@pytest.mark.parametrize("secret", ["", "x"])
async def test_the_media_server_does_not_start_without_an_api_secret(tmp_path, secret):
    """Standing alone (``beeldbel run`` makes one), the media server needs the
    secret the control plane creates rooms with; empty, every room call fails."""
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        f'[mediaserver]\nport = {free_port()}\nudp_port = 0\napi_secret = "{secret}"\n',
        encoding="utf-8",
    )
    code, output = await beeldbel_cli(path, "mediaserver")
    assert code != 0
    line = _one_line(output)
    assert "[mediaserver]" in line
    assert "api_secret" in line


def _database_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        f'[database]\nurl = "{url}"\n[server]\ndata_dir = "{tmp_path / "var"}"\n',
        encoding="utf-8",
    )
    return path


async def test_migrate_without_the_postgresql_database_says_so_in_one_line(
    tmp_path,
):
    if SKIP_POSTGRES:
        pytest.skip("PostgreSQL not tested")
    url = make_url(PG_URL).set(
        database="bb_no_such_database", password="a-password-to-hide"
    )
    path = _database_config(tmp_path, url.render_as_string(hide_password=False))
    code, output = await beeldbel_cli(path, "migrate")
    assert code != 0
    line = _one_line(output)
    assert "[database] url" in line
    assert "bb_no_such_database" in line
    assert "a-password-to-hide" not in line


async def test_migrate_with_an_sqlite_file_that_cannot_be_made_says_so(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    path = _database_config(tmp_path, f"sqlite+aiosqlite:///{blocker}/b.sqlite3")
    code, output = await beeldbel_cli(path, "migrate")
    assert code != 0
    line = _one_line(output)
    assert "[database] url" in line
    assert str(blocker) in line


def _listening_config(
    tmp_path: Path, port: int, media_port: int, udp_port: int, workers: int
) -> Path:
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        f"""
[server]
port = {port}
data_dir = "{tmp_path / "var"}"
[tls]
enabled = false
[logging]
level = "warning"
[database]
url = "sqlite+aiosqlite:///{tmp_path / "var/b.sqlite3"}"
[metrics]
port = 0
[mediaserver]
port = {media_port}
udp_port = {udp_port}
workers = {workers}
api_secret = "a-media-api-secret-for-this-test"
""",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(
    ("command", "workers", "busy", "key", "udp"),
    [
        ("controlplane", 1, 0, "[server] port", False),
        ("mediaserver", 1, 0, "[mediaserver] port", False),
        # worker n listens on port + n: the second one's port is taken, so the
        # whole media server stops rather than run on with half its workers
        ("mediaserver", 2, 1, "[mediaserver] port, worker 1", False),
        # and on udp_port + n for media
        ("mediaserver", 1, 0, "[mediaserver] udp_port", True),
        ("mediaserver", 2, 1, "[mediaserver] udp_port, worker 1", True),
    ],
)
async def test_a_port_in_use_stops_the_start_naming_key_and_address(
    tmp_path, command, workers, busy, key, udp
):
    port, media_port, udp_port = free_port(), free_port(workers), free_port(workers)
    if udp:
        taken = udp_port + busy
    else:
        taken = (port if command == "controlplane" else media_port) + busy
    path = _listening_config(tmp_path, port, media_port, udp_port, workers)
    with socket.socket(type=socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", taken))
        if not udp:
            other.listen()
        code, output = await beeldbel_cli(path, command)
    assert code != 0
    line = _one_line(output)
    assert f"({key})" in line
    assert f"127.0.0.1:{taken}{'/udp' if udp else ''} " in line
    assert "in use" in line
