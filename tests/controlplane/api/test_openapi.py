"""The OpenAPI document matches the API: schemathesis drives the real app with it.

Valid and invalid requests generated from the document must never get a 5xx,
invalid ones must be refused, and every response must have a documented
status, content type, headers and body schema.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation import GenerationMode

from beeldbel.config import (
    Config,
    DatabaseConfig,
    MetricsConfig,
    SecurityConfig,
    ServerConfig,
    TlsConfig,
)
from controlplane.api.openapi import document
from controlplane.app.factory import create_app
from controlplane.security.api_keys import create_api_key
from controlplane.storage.database import DB

schema = schemathesis.openapi.from_dict(document())
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=60,
    # every call carries the test's key (missing and bad keys have tests of their
    # own): a case whose only "invalid" part is a dropped Authorization header
    # would reach the API valid, and a 200 to it is no fault
    with_security_parameters=False,
)


class _Server:
    """The real control plane on a loopback port, in its own thread and loop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.base_url = ""
        self.key = ""
        self._stop: asyncio.Event | None = None

    def _run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        app = create_app(self.config)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        self.key = await create_api_key(
            app[DB],
            "schemathesis",
            ("callbacks:write", "callbacks:read", "calls:write"),
        )
        self.ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> _Server:
        self.thread.start()
        assert self.ready.wait(30), "the control plane did not start"
        return self

    def __exit__(self, *_exc: object) -> None:
        stop = self._stop
        assert stop is not None
        self.loop.call_soon_threadsafe(stop.set)
        self.thread.join(30)
        self.loop.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    tmp: Path = tmp_path_factory.mktemp("openapi")
    config = Config(
        server=ServerConfig(public_url="http://127.0.0.1", data_dir=str(tmp)),
        tls=TlsConfig(enabled=False),
        database=DatabaseConfig(url=f"sqlite+aiosqlite:///{tmp / 'api.sqlite3'}"),
        metrics=MetricsConfig(port=0),
        security=SecurityConfig(api_per_key_per_minute=1_000_000),
    )
    with _Server(config) as running:
        yield running


@pytest.mark.slow
@schema.parametrize()
@settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api_conforms_to_its_document(case: Any, server: _Server) -> None:
    case.call_and_validate(
        base_url=server.base_url,
        headers={"Authorization": f"Bearer {server.key}"},
        # the document cannot say which numbers exist or which slots are free
        excluded_checks=[positive_data_acceptance],
    )


def test_document_is_served_without_a_key(server: _Server) -> None:
    response = requests.get(f"{server.base_url}/api/v1/openapi.json", timeout=10)
    assert response.status_code == 200
    assert response.json() == document()
