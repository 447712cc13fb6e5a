"""Stopping `beeldbel run`: Ctrl-C in its terminal (SIGINT to the whole process
group) and SIGTERM to it alone both end it with exit code 0 and no error line."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import wait_for
from tests.one_machine import read_until, run_config


def _error_lines(stderr: str) -> list[str]:
    """Lines that report a failure: a traceback, a cancelled task, or a log line
    at level error or worse."""
    bad = []
    for line in stderr.splitlines():
        try:
            level = str(json.loads(line).get("level", ""))
        except (ValueError, AttributeError):
            level = ""
        if level in ("error", "critical", "exception") or any(
            word in line for word in ("Traceback", "CancelledError", "Exception")
        ):
            bad.append(line)
    return bad


@pytest.mark.slow
@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
async def test_run_stops_cleanly(tmp_path: Path, how: str) -> None:
    config, port, media_port = run_config(tmp_path)
    command = Path(sys.executable).parent / "beeldbel"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEELDBEL_")}
    process = await asyncio.create_subprocess_exec(
        str(command),
        *("--config", str(config), "run"),
        cwd=tmp_path,
        env=env,
        # its own process group, as a shell gives a foreground job
        process_group=0,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stderr = asyncio.ensure_future(process.stderr.read())
    try:
        seen: list[str] = []
        await read_until(process.stdout, "Staff:", seen)
        ca = next(line.split(": ", 1)[1].strip() for line in seen if "ca.crt" in line)
        trusting = ssl.create_default_context(cafile=ca)
        async with aiohttp.ClientSession() as session:

            async def up(url: str) -> bool:
                try:
                    async with session.get(url, ssl=trusting) as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(lambda: up(f"https://127.0.0.1:{port}/"), 30, "HTTPS")
            await wait_for(
                lambda: up(f"https://127.0.0.1:{media_port}/healthz"), 30, "media"
            )
        if how == "ctrl-c":
            os.killpg(process.pid, signal.SIGINT)
        else:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 60)
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    errors = await asyncio.wait_for(stderr, 10)
    assert code == 0, errors.decode()
    assert _error_lines(errors.decode()) == []
