"""The `beeldbel` command as a person runs it: `run` starts the whole system."""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.helpers import beeldbel_cli, wait_for
from tests.one_machine import beeldbel_run, run_config

ROOT = Path(__file__).resolve().parents[2]


async def _media_join_works(
    session: aiohttp.ClientSession,
    context: ssl.SSLContext,
    config: Path,
    port: int,
    media_port: int,
    workers: int,
) -> None:
    """The two processes found each other: the control plane makes a room on the
    media server over HTTPS, and the media server accepts the control plane's token
    (JWKS fetched over HTTPS with the dev CA) on its WSS signalling, on every
    worker. Which worker takes which call is placement's (fewest open calls, a
    worker whose CPU is busy last: tests/controlplane/calls/test_node_registry.py);
    here a worker busy with its start on a loaded machine may take both."""
    code, key = await beeldbel_cli(
        config,
        "admin",
        "apikey-create",
        "run-test",
        "--scope",
        "callbacks:write",
        "--scope",
        "calls:write",
    )
    assert code == 0, key
    key = key.strip().splitlines()[-1]
    auth = {"Authorization": f"Bearer {key}"}
    base = f"https://127.0.0.1:{port}/api/v1/callbacks"
    urls = {f"wss://127.0.0.1:{media_port + worker}/ws" for worker in range(workers)}
    for _ in range(workers):
        grant = await _open_call(session, context, base, auth)
        assert grant["media_url"] in urls
        async with session.ws_connect(grant["media_url"], ssl=context) as ws:
            await ws.send_json(
                {"type": "join", "room_id": grant["room_id"], "token": grant["token"]}
            )
            reply = await ws.receive_json(timeout=15)
        assert reply["type"] == "joined", reply


async def _open_call(
    session: aiohttp.ClientSession,
    context: ssl.SSLContext,
    base: str,
    auth: dict[str, str],
) -> dict[str, Any]:
    """A new video request through the API and an agent's media grant for it."""
    body = {
        "name": "Run Test",
        "phone": "0612345678",
        "topic": "other",
        "channel": "video",
        "preferred": "asap",
        "language": "nl",
        "consent": True,
    }
    async with session.post(base, json=body, headers=auth, ssl=context) as response:
        assert response.status == 201, await response.text()
        reference = (await response.json())["reference"]
    async with session.post(
        f"{base}/{reference}/tokens",
        json={"role": "agent", "kind": "media"},
        headers=auth,
        ssl=context,
    ) as response:
        assert response.status in (200, 201), await response.text()
        grant: dict[str, Any] = await response.json()
    return grant


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
async def test_run_starts_everything_over_https_and_prints_how_to_log_in(
    tmp_path, workers
):
    config, port, media_port = run_config(tmp_path, workers)
    # the installed console script, outside the repository, as `make run` runs it:
    # whatever it imports must be installed, not merely next to the working directory
    command = Path(sys.executable).parent / "beeldbel"
    async with (
        beeldbel_run(command, config, tmp_path) as started,
        aiohttp.ClientSession() as session,
    ):
        assert f"https://127.0.0.1:{port}/" in started.output
        assert f"https://127.0.0.1:{port}/staff" in started.output
        assert "one-time password" in started.output

        refused: list[str] = []

        async def answers() -> bool:
            try:
                async with session.get(
                    f"https://127.0.0.1:{port}/", ssl=started.tls
                ) as response:
                    assert response.status == 200
                    assert "Strict-Transport-Security" in response.headers
                    return True
            except aiohttp.ClientConnectionError as exc:
                refused[:] = [repr(exc)]
                return False

        await wait_for(
            answers,
            30,
            lambda: (
                "the control plane to answer over HTTPS; last seen "
                f"{refused}; {started.diagnosis()}"
            ),
        )
        await _media_join_works(session, started.tls, config, port, media_port, workers)


async def test_unknown_config_key_stops_the_start_with_its_name(tmp_path):
    path = tmp_path / "beeldbel.toml"
    path.write_text("[server]\nprot = 1\n", encoding="utf-8")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "beeldbel.cli",
        "--config",
        str(path),
        "run",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert b"server.prot" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["admin", "user-add", "Not A Name!"], "username"),
        (["admin", "apikey-create", "x", "--scope", "everything"], "scope"),
        (["keys", "retire", "no-such-kid"], ""),
    ],
)
async def test_admin_mistakes_get_a_message_not_a_traceback(tmp_path, args, says):
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "b.sqlite3"}"\n'
        f'[server]\ndata_dir = "{tmp_path}"\n',
        encoding="utf-8",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "beeldbel.cli",
        "--config",
        str(path),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 1
    assert b"Traceback" not in err
    assert err.startswith(b"beeldbel: ")
    assert says.encode() in err.lower()


def test_one_machine_makes_one_media_node_per_worker():
    """`beeldbel run` with several media workers: worker i is node <node_id>-i on
    port + i; one worker keeps the single-node settings; explicit nodes win."""
    from beeldbel.cli.one_machine import one_machine_environment
    from beeldbel.config import load_config, media_nodes

    def nodes(workers: int) -> list[tuple[str, str, str]]:
        given = {
            "BEELDBEL_MEDIASERVER_NODE_ID": "m",
            "BEELDBEL_MEDIASERVER_PORT": "9000",
            "BEELDBEL_MEDIASERVER_WORKERS": str(workers),
        }
        env = one_machine_environment(load_config(None, given), None)
        # what both child processes load: the same config plus env
        loaded = load_config(None, {**given, **env})
        return [(n.node_id, n.api_url, n.ws_url) for n in media_nodes(loaded)]

    assert nodes(1) == [("m", "https://127.0.0.1:9000", "wss://127.0.0.1:9000/ws")]
    assert nodes(2) == [
        ("m-0", "https://127.0.0.1:9000", "wss://127.0.0.1:9000/ws"),
        ("m-1", "https://127.0.0.1:9001", "wss://127.0.0.1:9001/ws"),
    ]
    explicit = load_config(
        None,
        {
            "BEELDBEL_MEDIASERVER_WORKERS": "2",
            "BEELDBEL_CALLS_MEDIA_NODES": (
                '[{"node_id": "x", "api_url": "http://h:1", "ws_url": "ws://h:1/ws"}]'
            ),
        },
    )
    assert "BEELDBEL_CALLS_MEDIA_NODES" not in one_machine_environment(explicit, None)
    assert "BEELDBEL_CALLS_MEDIA_WS_URL" not in one_machine_environment(explicit, None)
