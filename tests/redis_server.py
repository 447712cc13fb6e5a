"""A real Redis for tests: a private ``redis-server`` on loopback inside the test
namespace (the machine's own Redis is outside it), nothing kept on disk."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.helpers import free_port


@contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    """Start ``redis-server``; yields its URL; stops it afterwards."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: `make test` installs it (Debian)"
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - the machine's redis-server
        [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(500):  # up within a second or two; polled, not slept
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                process.poll()
                assert process.returncode is None, "redis-server exited"
                _wait_a_little(process)
        client.close()
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _wait_a_little(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(0.01)
