"""Beeldbel started as ``beeldbel run`` starts it on one machine, for the tests
that run the installed command: its config and reading what it prints."""

from __future__ import annotations

import asyncio
import signal
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port


def run_config(
    tmp_path: Path, workers: int = 1, server: str = ""
) -> tuple[Path, int, int]:
    """A config for ``beeldbel run`` in ``tmp_path`` on free ports (``server``:
    more lines for its ``[server]`` section): its path, the control plane's port
    and the media server's."""
    port = free_port()
    media_port = free_port(workers)  # worker n listens on media_port + n
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        f"""
[server]
port = {port}
public_url = "https://127.0.0.1:{port}"
data_dir = "{tmp_path / "var"}"
{server}
[tls]
cert_file = "{tmp_path / "var/certs/server.crt"}"
key_file = "{tmp_path / "var/certs/server.key"}"
[database]
url = "sqlite+aiosqlite:///{tmp_path / "var/beeldbel.sqlite3"}"
[metrics]
port = {free_port()}
[mediaserver]
port = {media_port}
udp_port = {free_port(workers)}
workers = {workers}
""",
        encoding="utf-8",
    )
    return path, port, media_port


async def read_until(
    stream: asyncio.StreamReader, marker: str, seen: list[str]
) -> None:
    """Read output lines into ``seen`` until one holds ``marker``."""
    while not any(marker in line for line in seen):
        line = await asyncio.wait_for(stream.readline(), 30)
        if not line:
            raise AssertionError(f"output ended before {marker!r}: {seen}")
        seen.append(line.decode())


@dataclass(frozen=True, slots=True)
class Started:
    """What ``beeldbel run`` printed, and a TLS context that trusts its dev CA."""

    output: str
    tls: ssl.SSLContext
    log: Path
    process: asyncio.subprocess.Process

    def diagnosis(self) -> str:
        """Whether the command still runs, and the end of its processes' log: for
        a failure message when it stops answering."""
        state = (
            "still running"
            if self.process.returncode is None
            else f"exited with {self.process.returncode}"
        )
        tail = self.log.read_text(encoding="utf-8", errors="replace")[-3000:]
        return f"`beeldbel run` {state}; the end of its log:\n{tail}"


@asynccontextmanager
async def beeldbel_run(
    command: Path, config: Path, cwd: Path
) -> AsyncIterator[Started]:
    """``command run`` (an installed ``beeldbel`` script) until it has printed how
    to log in; afterwards stopped with SIGTERM, and it must exit with 0. What its
    processes log goes to ``run.log`` in ``cwd`` (:meth:`Started.diagnosis`)."""
    log = cwd / "run.log"
    with log.open("wb") as log_file:
        process = await asyncio.create_subprocess_exec(
            str(command),
            *("--config", str(config), "run"),
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=log_file,
        )
    assert process.stdout is not None
    seen: list[str] = []
    try:
        await read_until(process.stdout, "Staff:", seen)
        cas = [line.split(": ", 1)[1].strip() for line in seen if "ca.crt" in line]
        assert cas, f"no CA certificate named in {seen}"
        tls = ssl.create_default_context(cafile=cas[0])
        yield Started("".join(seen), tls, log, process)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 30)
    assert code == 0
