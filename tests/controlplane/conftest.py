"""Fixtures for the control plane's tests: real media nodes in-process, a real
SMTP server on loopback (``smtp``), and the logs as production writes them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from beeldbel.config import MediaServerConfig, Secret
from beeldbel.logging import configure_logging
from mediaserver.app import create_app as create_media_app
from tests.controlplane.mail import smtp  # noqa: F401 (the SMTP server fixture)
from tests.controlplane.video_calls import API_SECRET, NODE, MediaServer


@pytest.fixture
def media_server(aiohttp_server: Any) -> MediaServer:
    """Starts a real media node called ``node_id``; returns its test server."""

    async def serve(node_id: str) -> TestServer:
        config = MediaServerConfig(
            node_id=node_id,
            udp_port=0,
            udp_bind="127.0.0.1",
            api_secret=Secret(API_SECRET),
            jwks_url="https://127.0.0.1:9/jwks.json",
        )
        server: TestServer = await aiohttp_server(
            create_media_app(config, CollectorRegistry())
        )
        return server

    return serve


@pytest.fixture
async def media(media_server: MediaServer) -> TestServer:
    """The media node ``NODE`` that ``call_config`` points the control plane at."""
    return await media_server(NODE)


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """JSON logs as in production, copied into a buffer; logging restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    configure_logging("info", "json")
    # production caches each module's logger on first use; here that would keep
    # later tests' loggers writing this test's way, past capture_logs()
    structlog.configure(cache_logger_on_first_use=False)
    stream = io.StringIO()
    copy = logging.StreamHandler(stream)
    copy.setFormatter(root.handlers[0].formatter)
    root.addHandler(copy)
    yield stream
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    structlog.reset_defaults()
