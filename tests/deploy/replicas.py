"""A replicated desk on one machine, as real processes, for tests/deploy/test_replicas.

:func:`deployment` starts a fresh PostgreSQL database (migrated with ``beeldbel
migrate``), a private Redis, two control planes (replicas ``a`` and ``b``: ``beeldbel
controlplane``, one config apart from the port: one database, one Redis, one
secret key), HAProxy in front of them and two media nodes (``beeldbel
mediaserver``) that fetch the JWKS and send their heartbeats through HAProxy,
with the shipped heartbeat and down times (3 s and 10 s).

HAProxy terminates TLS with the dev certificate and balances round robin over
plain HTTP (the replicas trust one proxy for ``X-Forwarded-For``). Each response
says which replica served it (``X-Served-By``); a request with ``X-Replica: a``
goes to replica a while it is up (``use-server``: ignored for a server that is
down, so such a request then goes to the other). A :class:`Browser` is one
person: own cookies and an own loopback source address (a client IP of its own
for the per-IP limits), :mod:`tests.deploy.desk_clients`. Run inside ``unshare
--net`` (loopback only).
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
import sqlalchemy as sa

from beeldbel.cli.devca import ensure_dev_certificates
from controlplane.storage.database import Database
from controlplane.storage.schema import (
    audit_log,
    call_records,
    callback_requests,
    media_nodes,
    users,
)
from tests.conftest import _drop_pg_database, _fresh_pg_database
from tests.controlplane.staff_accounts import add_staff_to
from tests.deploy.desk_clients import PASSWORD, Browser
from tests.helpers import beeldbel_cli, free_port, free_udp_port, wait_for
from tests.redis_server import redis_server

ROOT = Path(__file__).resolve().parents[2]
REPLICAS = ("a", "b")
NODES = ("media-1", "media-2")
API_SECRET = "replicas-media-api-secret-0123456789"
SECRET_KEY = "replicas-secret-key-0123456789-abcdefghijklmnop"
LOCKOUT_THRESHOLD = 3
LOGIN_PER_IP_PER_MINUTE = 6


@dataclass
class Process:
    """One started process and its log file."""

    name: str
    command: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("BEELDBEL_")}
        self._log = self.log_path.open("ab")
        self.popen = subprocess.Popen(  # noqa: S603 - our own commands
            self.command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        assert self.running, f"{self.name} is not running"
        self.popen.send_signal(signum)

    async def exited(self, timeout: float) -> int:  # noqa: ASYNC109
        """Wait for the process to end; its exit code."""
        assert self.popen is not None
        popen = self.popen
        await wait_for(lambda: popen.poll() is not None, timeout, f"{self.name} exit")
        return popen.returncode

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


@dataclass
class Deployment:
    tmp: Path
    db_url: str
    ca_file: Path
    proxy_url: str
    controls: dict[str, Process] = field(default_factory=dict)
    media: dict[str, Process] = field(default_factory=dict)
    proxy: Process | None = None
    control_ports: dict[str, int] = field(default_factory=dict)
    media_ports: dict[str, int] = field(default_factory=dict)
    browsers: list[Browser] = field(default_factory=list)
    #: The last byte of the next browser's loopback address.
    next_address: int = 2

    @property
    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def media_url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.media_ports[node]}"

    def browser(self, replica: str | None = None) -> Browser:
        """A new browser at a source address of its own; ``replica``: pinned."""
        address = f"127.0.0.{self.next_address}"
        self.next_address += 1
        browser = Browser(self.proxy_url, self.tls, address, replica)
        self.browsers.append(browser)
        return browser

    # processes

    async def start_control(self, name: str) -> None:
        process = self.controls[name]
        process.start()
        await self.wait_http(
            f"http://127.0.0.1:{self.control_ports[name]}/readyz", process
        )

    async def ensure_media(self, node: str) -> None:
        """``node`` running and placed on (started again if it was stopped)."""
        if not self.media[node].running:
            self.media[node].stop()
            await self.start_media(node)

    async def start_media(self, node: str) -> None:
        process = self.media[node]
        process.start()
        await self.wait_http(self.media_url(node) + "/readyz", process)
        await wait_for(
            lambda: self.node_row_is(node, state="up", draining=False),
            10,
            f"{node}'s heartbeat through HAProxy",
        )

    async def wait_http(self, url: str, process: Process) -> None:
        async with aiohttp.ClientSession() as session:

            async def up() -> bool:
                if not process.running:
                    raise AssertionError(
                        f"{process.name} exited:\n{process.log_tail()}"
                    )
                try:
                    async with session.get(url) as response:
                        return response.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(up, 30, f"{url} to be ready")

    async def proxy_sees(self, replica: str, up: bool) -> None:
        """Wait until HAProxy sends ``X-Replica`` requests to ``replica`` (or, when
        it is down, to the other one)."""

        async def served() -> bool:
            async with (
                aiohttp.ClientSession() as session,
                session.get(
                    self.proxy_url + "/healthz",
                    headers={"X-Replica": replica},
                    ssl=self.tls,
                ) as response,
            ):
                return (response.headers.get("X-Served-By") == replica) == up

        await wait_for(served, 10, f"HAProxy to see replica {replica} up={up}")

    # the database

    async def _query(self, statement: Any) -> list[Any]:
        db = Database(self.db_url)
        try:
            async with db.read() as conn:
                return list((await conn.execute(statement)).all())
        finally:
            await db.close()

    async def node_row_is(self, node: str, **expected: Any) -> bool:
        rows = await self._query(
            sa.select(media_nodes).where(media_nodes.c.node_id == node)
        )
        if not rows or rows[0].last_seen is None:
            return False
        return all(getattr(rows[0], k) == v for k, v in expected.items())

    async def call_record(self, room_id: str) -> Any:
        rows = await self._query(
            sa.select(call_records).where(call_records.c.room_id == room_id)
        )
        assert rows, f"no call record for room {room_id}"
        return rows[0]

    async def request_row(self, reference: str) -> Any:
        rows = await self._query(
            sa.select(callback_requests).where(
                callback_requests.c.reference == reference
            )
        )
        assert rows, f"no request {reference}"
        return rows[0]

    async def audit_actions(self, request_id: int) -> list[str]:
        rows = await self._query(
            sa.select(audit_log.c.action)
            .where(audit_log.c.request_id == request_id)
            .order_by(audit_log.c.id)
        )
        return [row.action for row in rows]

    async def user_row(self, username: str) -> Any:
        rows = await self._query(sa.select(users).where(users.c.username == username))
        assert rows, f"no user {username}"
        return rows[0]

    async def add_staff(self, username: str, role: str = "agent") -> str:
        """A staff account with :data:`PASSWORD`; returns its TOTP secret."""
        config = self.tmp / "control-a.toml"
        return await add_staff_to(self.db_url, config, username, role, PASSWORD)


def _control_config(system: Deployment, name: str, redis_url: str) -> str:
    tmp, proxy_url = system.tmp, system.proxy_url
    nodes = ", ".join(
        f'{{node_id = "{node}", api_url = "{system.media_url(node)}", '
        f'ws_url = "ws://127.0.0.1:{port}/ws"}}'
        for node, port in system.media_ports.items()
    )
    return f"""
[server]
host = "127.0.0.1"
port = {system.control_ports[name]}
public_url = "{proxy_url}"
data_dir = "{tmp / f"data-{name}"}"
trusted_proxies = 1
[tls]
enabled = false
[database]
url = "{system.db_url}"
[redis]
url = "{redis_url}"
[metrics]
port = 0
[logging]
format = "json"
[security]
secret_key = "{SECRET_KEY}"
lockout_threshold = {LOCKOUT_THRESHOLD}
login_per_ip_per_minute = {LOGIN_PER_IP_PER_MINUTE}
[mediaserver]
api_secret = "{API_SECRET}"
token_issuer = "{proxy_url}"
[calls]
media_nodes = [{nodes}]
"""


def _media_config(node: str, port: int, proxy_url: str, ca_file: Path) -> str:
    return f"""
[logging]
format = "json"
[mediaserver]
host = "127.0.0.1"
port = {port}
node_id = "{node}"
udp_port = {free_udp_port()}
udp_bind = "127.0.0.1"
advertised_address = "127.0.0.1"
jwks_url = "{proxy_url}/.well-known/jwks.json"
jwks_ca_file = "{ca_file}"
token_issuer = "{proxy_url}"
api_secret = "{API_SECRET}"
control_plane_url = "{proxy_url}"
drain_timeout_seconds = 300
workers = 1
"""


def _haproxy_config(port: int, pem: Path, controls: dict[str, int]) -> str:
    servers = "\n".join(
        f"    use-server {name} if {{ req.hdr(x-replica) -m str {name} }}"
        for name in controls
    )
    servers += "\n" + "\n".join(
        f"    server {name} 127.0.0.1:{p} check inter 300ms fall 1 rise 1"
        for name, p in controls.items()
    )
    return f"""
global
    maxconn 1000
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 5s
    retries 3
    option redispatch 1
frontend desk
    bind 127.0.0.1:{port} ssl crt {pem}
    option forwardfor
    default_backend controlplanes
backend controlplanes
    balance roundrobin
    option httpchk GET /readyz
    http-response set-header X-Served-By %s
{servers}
"""


def _beeldbel(config: Path, command: str) -> list[str]:
    return [sys.executable, "-m", "beeldbel.cli", "--config", str(config), command]


@asynccontextmanager
async def deployment(tmp: Path) -> AsyncIterator[Deployment]:
    """The whole replicated desk, up and ready; stopped afterwards."""
    certs = ensure_dev_certificates(tmp / "certs")
    pem = tmp / "certs" / "haproxy.pem"
    pem.write_bytes(certs.cert_file.read_bytes() + certs.key_file.read_bytes())
    proxy_port = free_port()
    proxy_url = f"https://127.0.0.1:{proxy_port}"
    db_url, db_name = await _fresh_pg_database()
    system = Deployment(tmp, db_url, certs.ca_file, proxy_url)
    system.control_ports = {name: free_port() for name in REPLICAS}
    system.media_ports = {node: free_port() for node in NODES}
    try:
        with redis_server(tmp) as redis_url:
            for name in REPLICAS:
                path = tmp / f"control-{name}.toml"
                path.write_text(
                    _control_config(system, name, redis_url), encoding="utf-8"
                )
                system.controls[name] = Process(
                    f"replica {name}",
                    _beeldbel(path, "controlplane"),
                    tmp / f"control-{name}.log",
                )
            for node, port in system.media_ports.items():
                path = tmp / f"{node}.toml"
                path.write_text(
                    _media_config(node, port, proxy_url, certs.ca_file),
                    encoding="utf-8",
                )
                system.media[node] = Process(
                    node, _beeldbel(path, "mediaserver"), tmp / f"{node}.log"
                )
            haproxy_cfg = tmp / "haproxy.cfg"
            haproxy_cfg.write_text(
                _haproxy_config(proxy_port, pem, system.control_ports), encoding="utf-8"
            )
            system.proxy = Process(
                "haproxy",
                ["haproxy", "-db", "-f", str(haproxy_cfg)],
                tmp / "haproxy.log",
            )
            code, out = await beeldbel_cli(tmp / "control-a.toml", "migrate")
            assert code == 0, f"beeldbel migrate failed: {out}"
            try:
                system.proxy.start()
                await asyncio.gather(*(system.start_control(n) for n in REPLICAS))
                for name in REPLICAS:
                    await system.proxy_sees(name, up=True)
                await asyncio.gather(*(system.start_media(n) for n in NODES))
                yield system
            finally:
                for browser in system.browsers:
                    await browser.close()
                for process in system.media.values():
                    if process.running:  # no drain: its calls are test calls
                        process.signal(signal.SIGKILL)
                    process.stop()
                for process in system.controls.values():
                    process.stop()
                if system.proxy is not None:
                    system.proxy.stop()
    finally:
        await _drop_pg_database(db_name)
