"""Control-plane intake benchmark: callback requests per second through /api/v1.

Starts one real ``python -m controlplane`` process per database backend (SQLite
file, then a scratch PostgreSQL database ``bb_bench_*`` it creates and drops),
drives it over loopback with N concurrent aiohttp clients posting callback
requests with idempotency keys for a fixed time, and prints accepted requests
per second, p50/p99 latency, errors and the PostgreSQL/SQLite ratio.

    .venv/bin/python bench/controlplane_intake.py --clients 32 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from controlplane.security.api_keys import create_api_key  # noqa: E402
from controlplane.storage.database import Database  # noqa: E402

PG_URL = os.environ.get(
    "BEELDBEL_BENCH_PG_URL", "postgresql+asyncpg://root@/test?host=/var/run/postgresql"
)
BODY = {
    "name": "Bench Burger",
    "phone": "06-12345678",
    "topic": "report_crime",
    "channel": "video",
    "preferred": "asap",
    "language": "nl",
    "accessibility": ["extra_time"],
    "consent": True,
}


@dataclass
class Result:
    backend: str
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    #: CPU seconds the control-plane process used while measured
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100)[int(p) - 1] * 1000

    def line(self) -> str:
        errors = sum(self.errors.values())
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(self.errors.items()))
        return (
            f"{self.backend:<10} accepted {self.rate:8.1f} req/s   "
            f"p50 {self.percentile(50):7.1f} ms   p99 {self.percentile(99):7.1f} ms   "
            f"server CPU {self.cpu_ms:5.2f} ms/req   "
            f"errors {errors}{f' ({kinds})' if kinds else ''}"
        )

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu / max(len(self.latencies), 1) * 1000


def _cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pg_connect_kwargs() -> dict[str, object]:
    parsed = make_url(PG_URL)
    return {
        "user": parsed.username,
        "database": parsed.database,
        "host": parsed.query.get("host") or parsed.host or "127.0.0.1",
        **({"port": parsed.port} if parsed.port else {}),
    }


async def _pg_admin(sql: str) -> None:
    conn = await asyncpg.connect(**_pg_connect_kwargs(), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _start(url: str, workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    toml = workdir / "beeldbel.toml"
    toml.write_text(
        f'[server]\nport = {port}\npublic_url = "{base}"\n'
        f'data_dir = "{workdir / "data"}"\n'
        '[tls]\nenabled = false\n[metrics]\nport = 0\n[logging]\nformat = "json"\n'
    )
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "BEELDBEL_DATABASE_URL": url,
        "BEELDBEL_SECURITY_API_PER_KEY_PER_MINUTE": "100000000",
    }
    log = (workdir / "controlplane.log").open("ab")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "controlplane",
        "--config",
        str(toml),
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    log.close()
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise RuntimeError(f"control plane exited; see {workdir}")
            try:
                async with session.get(f"{base}/api/v1/openapi.json") as response:
                    if response.status == 200:
                        return process, base
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError("control plane did not become ready")


async def _drive(
    base: str,
    key: str,
    clients: int,
    seconds: float,
    backend: str,
    pid: int,
    idempotent: bool,
) -> Result:
    url = f"{base}/api/v1/callbacks"
    result = Result(backend, seconds)
    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def client(measure_until: float) -> None:
            while (now := time.monotonic()) < measure_until:
                headers = {"Authorization": f"Bearer {key}"}
                if idempotent:
                    headers["Idempotency-Key"] = uuid.uuid4().hex
                status: int | str
                try:
                    async with session.post(url, json=BODY, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (TimeoutError, aiohttp.ClientError) as exc:
                    status = type(exc).__name__
                if status == 201:
                    result.latencies.append(time.monotonic() - now)
                else:
                    result.errors[str(status)] = result.errors.get(str(status), 0) + 1

        # warm up connections and caches, then measure
        await asyncio.gather(*(client(time.monotonic() + 1) for _ in range(clients)))
        result.latencies.clear()
        result.errors.clear()
        started, cpu = time.monotonic(), _cpu_seconds(pid)
        await asyncio.gather(*(client(started + seconds) for _ in range(clients)))
        result.seconds = time.monotonic() - started
        result.server_cpu = _cpu_seconds(pid) - cpu
    return result


async def run_backend(
    backend: str, clients: int, seconds: float, idempotent: bool
) -> Result:
    with tempfile.TemporaryDirectory(prefix="bb_bench_") as tmp:
        workdir = Path(tmp)
        pg_name = None
        if backend == "sqlite":
            url = f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}"
        else:
            pg_name = f"bb_bench_{uuid.uuid4().hex[:10]}"
            await _pg_admin(f'CREATE DATABASE "{pg_name}"')
            url = make_url(PG_URL).set(database=pg_name).render_as_string(False)
        process = None
        try:
            db = Database(url)
            await db.migrate()
            key = await create_api_key(db, "bench", ("callbacks:write",))
            await db.close()
            process, base = await _start(url, workdir)
            return await _drive(
                base, key, clients, seconds, backend, process.pid, idempotent
            )
        finally:
            if process is not None and process.returncode is None:
                process.terminate()
                await process.wait()
            if pg_name is not None:
                await _pg_admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)')


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--backend", choices=("sqlite", "postgresql", "both"), default="both"
    )
    parser.add_argument(
        "--no-idempotency-key",
        action="store_true",
        help="post without Idempotency-Key (to see what it costs)",
    )
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    print(
        f"POST /api/v1/callbacks "
        f"{'without' if args.no_idempotency_key else 'with'} Idempotency-Key, "
        f"{args.clients} clients, "
        f"{args.seconds:g} s per backend, {os.cpu_count()} CPUs"
    )
    results = {}
    for backend in backends:
        results[backend] = await run_backend(
            backend, args.clients, args.seconds, not args.no_idempotency_key
        )
        print(results[backend].line(), flush=True)
    if len(results) == 2:
        ratio = results["postgresql"].rate / max(results["sqlite"].rate, 1e-9)
        print(f"PostgreSQL/SQLite throughput ratio: {ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
