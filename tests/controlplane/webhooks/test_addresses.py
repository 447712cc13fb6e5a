"""SSRF: webhooks never go to private, loopback or link-local addresses unless
the config allows it, and the refusal comes before any connection (a listener
on loopback counts connections; other addresses would fail to connect in the
tests' loopback-only namespace, with another code)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from controlplane.webhooks import EndpointInvalid, add_endpoint
from controlplane.webhooks.sender import Message, Sender
from tests.controlplane.webhooks.receivers import SECRET_KEY, integrator

REFUSED = (
    "https://127.0.0.1/hook",
    "https://10.0.0.1/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/hook",
    "https://localhost/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "http://198.51.100.7/hook",
)


class Listener:
    """A TCP listener on loopback that counts the connections it accepts."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def accept(self, _r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        w.close()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    found = Listener()
    server = await asyncio.start_server(found.accept, "127.0.0.1", 0)
    found.port = server.sockets[0].getsockname()[1]
    yield found
    server.close()
    await server.wait_closed()


def message(url: str) -> Message:
    return Message(1, "msg_1", url, "{}", ("whsec_" + "A" * 32,))


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "10.0.0.1", "169.254.169.254", "[::1]", "localhost"]
)
async def test_a_delivery_to_a_private_address_is_refused_before_connecting(
    host, listener
):
    sender = Sender(timeout_seconds=2, allow_private=False)
    try:
        result = await sender.send(message(f"https://{host}:{listener.port}/hook"))
    finally:
        await sender.close()
    assert result == "address_refused"
    assert listener.connections == 0


async def test_allowed_private_addresses_are_connected_to(listener):
    """The counter-check: with the config's permission the same URL connects."""
    sender = Sender(timeout_seconds=2, allow_private=True)
    try:
        result = await sender.send(message(f"http://localhost:{listener.port}/hook"))
    finally:
        await sender.close()
    assert result == "connection_failed"  # the listener hangs up at once
    assert listener.connections == 1


@pytest.mark.parametrize("url", REFUSED)
async def test_such_urls_cannot_be_registered(sqlite_db, url):
    with pytest.raises(EndpointInvalid, match="URL"):
        await integrator(sqlite_db, url, allow_private=False)


async def test_a_public_https_url_is_registered(sqlite_db):
    _key, endpoint, secret = await integrator(
        sqlite_db, "https://hooks.example.org/beeldbel", allow_private=False
    )
    assert endpoint.url == "https://hooks.example.org/beeldbel"
    assert secret.startswith("whsec_")


async def test_unknown_event_types_and_keys_are_named(sqlite_db):
    with pytest.raises(EndpointInvalid, match=r"'call\.exploded'"):
        await integrator(sqlite_db, "https://example.org/h", ("call.exploded",))
    with pytest.raises(EndpointInvalid, match="prefix 'nope'"):
        await add_endpoint(
            sqlite_db,
            SECRET_KEY,
            "nope",
            "https://example.org/h",
            (),
            allow_private=False,
        )
