"""`beeldbel run` bound to every address (``host = "0.0.0.0"``, as the Docker image
sets it): the control plane still reaches its media server over HTTPS, at an
address its certificate covers, not at the wildcard."""

from __future__ import annotations

import sys
from pathlib import Path

import aiohttp
import pytest

from beeldbel.cli.one_machine import one_machine_environment
from beeldbel.config import load_config, media_nodes
from tests.beeldbel.test_cli import _media_join_works
from tests.helpers import wait_for
from tests.one_machine import beeldbel_run, run_config


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::"])  # noqa: S104
@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_wildcard_bind_is_reached_at_the_public_host(wildcard, workers):
    given = {
        "BEELDBEL_SERVER_HOST": wildcard,
        "BEELDBEL_MEDIASERVER_HOST": wildcard,
        "BEELDBEL_MEDIASERVER_PORT": "9000",
        "BEELDBEL_MEDIASERVER_WORKERS": workers,
    }
    for public, host in [
        ("https://127.0.0.1:8443", "127.0.0.1"),
        ("https://localhost:8443", "localhost"),
        ("https://[::1]:8443", "[::1]"),
        # a real certificate covers the public name, not a loopback address
        ("https://desk.example.org", "desk.example.org"),
    ]:
        config = load_config(None, {**given, "BEELDBEL_SERVER_PUBLIC_URL": public})
        loaded = load_config(None, {**given, **one_machine_environment(config, None)})
        for node in media_nodes(loaded):
            assert node.api_url.startswith(f"https://{host}:900"), node
            assert node.ws_url.startswith(f"wss://{host}:900"), node


@pytest.mark.slow
async def test_run_on_every_address_reaches_its_media_server(tmp_path):
    """Red before: media_api_url was https://0.0.0.0:8444, which the dev certificate
    does not cover; a media token got a 503."""
    config, port, media_port = run_config(tmp_path, server='host = "0.0.0.0"')
    with config.open("a", encoding="utf-8") as toml:
        toml.write('host = "0.0.0.0"\n')  # the [mediaserver] section comes last
    command = Path(sys.executable).parent / "beeldbel"
    async with (
        beeldbel_run(command, config, tmp_path) as started,
        aiohttp.ClientSession() as session,
    ):

        async def answers() -> bool:
            try:
                url = f"https://127.0.0.1:{port}/healthz"
                async with session.get(url, ssl=started.tls) as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(answers, 30, "the control plane to answer over HTTPS")
        await _media_join_works(session, started.tls, config, port, media_port, 1)
