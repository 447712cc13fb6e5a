"""Fixtures: a real media server in-process, a real HTTPS JWKS, real aiortc clients."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import aioice.ice
import pytest
from aiohttp.test_utils import TestClient
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from beeldbel.config import MediaServerConfig, Secret
from beeldbel.tokens import MediaClaims, sign_media_token
from mediaserver.app import create_app
from tests.helpers import serve_jwks
from tests.mediaserver.client import MediaClient, loopback_only_gathering

ISSUER = "https://desk.test"
NODE = "media-test"
API_SECRET = "api-secret-for-tests"


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Test clients offer 127.0.0.1 only (restored after each test)."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    loopback_only_gathering()


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
async def jwks_url(aiohttp_server, signing_key, tmp_path) -> tuple[str, str]:
    """The control plane's JWKS on a real HTTPS server (trustme CA)."""
    return await serve_jwks(aiohttp_server, signing_key.public_key(), tmp_path)


def media_server_config(jwks_url: str, ca_file: str) -> MediaServerConfig:
    """The media server as the tests run it: UDP on any loopback port, tokens
    checked against the JWKS at ``jwks_url`` (its CA in ``ca_file``)."""
    return MediaServerConfig(
        node_id=NODE,
        udp_port=0,
        udp_bind="127.0.0.1",
        jwks_url=jwks_url,
        jwks_ca_file=ca_file,
        token_issuer=ISSUER,
        api_secret=Secret(API_SECRET),
    )


@pytest.fixture
def media_config(jwks_url) -> MediaServerConfig:
    return media_server_config(*jwks_url)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make_server(aiohttp_client, media_config, registry):
    async def make(**changes: Any) -> TestClient[Any, Any]:
        config = dataclasses.replace(media_config, **changes)
        client: TestClient[Any, Any] = await aiohttp_client(
            create_app(config, registry)
        )
        return client

    return make


@pytest.fixture
async def server(make_server) -> TestClient[Any, Any]:
    client: TestClient[Any, Any] = await make_server()
    return client


@pytest.fixture
def token(signing_key) -> Callable[..., str]:
    def make(room: str = "r1", role: str = "agent", sub: str = "", **changes) -> str:
        claims = MediaClaims.issue(
            issuer=ISSUER,
            audience=NODE,
            participant=sub or f"{role}-1",
            room=room,
            role=role,
        )
        claims = dataclasses.replace(claims, **changes)
        return sign_media_token(claims, changes.pop("key", signing_key), "k1")

    return make


async def create_room(
    server: TestClient[Any, Any], room_id: str = "r1", **body: Any
) -> None:
    response = await server.post(
        "/api/rooms",
        json={"room_id": room_id, **body},
        headers={"Authorization": f"Bearer {API_SECRET}"},
    )
    assert response.status == 201, await response.text()


@pytest.fixture
async def clients(server) -> AsyncIterator[Callable[..., MediaClient]]:
    made: list[MediaClient] = []

    def make(**kwargs: Any) -> MediaClient:
        client = MediaClient(str(server.make_url("/ws")), **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


async def metric(server: TestClient[Any, Any], name: str, **labels: str) -> float:
    """One sample of ``/metrics`` (0 when absent)."""
    text = await (await server.get("/metrics")).text()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(
                sample.labels.get(k) == v for k, v in labels.items()
            ):
                return float(sample.value)
    return 0.0
