"""``beeldbel mediaserver``: parse args, load config, configure logging, serve.

With ``workers`` > 1 this process starts one worker process per core, sharing
nothing: worker *n* listens on ``port + n`` and ``udp_port + n`` and is its own
media node ``<node_id>-<n>`` (the control plane places each room on one worker).
SIGTERM drains: no new rooms, readiness 503, calls go on until they end or
``drain_timeout_seconds`` pass.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import ssl
import subprocess
import sys

import structlog
import uvloop
from aiohttp import web

from beeldbel.config import ConfigError, MediaServerConfig, load_config
from beeldbel.http import hide_server_version, listen_failure, quiet_server_header
from beeldbel.logging import configure_logging
from beeldbel.processes import supervise
from beeldbel.tls import server_context
from mediaserver.app import create_app, drain

log = structlog.get_logger()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="beeldbel mediaserver")
    parser.add_argument("--config", help="TOML configuration file")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, os.environ)
    except ConfigError as exc:
        print(f"beeldbel mediaserver: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.logging.level, config.logging.format)
    quiet_server_header()
    media = config.mediaserver
    if not media.api_secret:
        # empty is the config's default because `beeldbel run` makes one; a media
        # server started on its own without it would refuse every room
        print(
            "beeldbel mediaserver: invalid config [mediaserver]: api_secret is empty;"
            " set the secret the control plane uses to create rooms",
            file=sys.stderr,
        )
        return 2
    workers = media.workers or os.cpu_count() or 1
    try:
        tls = ssl_context(media)
    except ConfigError as exc:
        print(f"beeldbel mediaserver: {exc}", file=sys.stderr)
        return 2
    if args.worker is not None:
        media = worker_config(media, args.worker)
    elif workers > 1:
        return _workers(args.config, workers)
    try:
        # libuv's loop: the per-wake-up work of asyncio's Python loop was about
        # a sixth of the CPU per forwarded packet (bench/README.md)
        uvloop.run(serve(media, tls))
    except OSError as exc:
        worker = f", worker {args.worker}" if args.worker else ""
        line = listen_failure(
            exc,
            {media.port: f"[mediaserver] port{worker}"},
            {media.udp_port: f"[mediaserver] udp_port{worker}"},
        )
        if line is None:
            raise
        print(f"beeldbel mediaserver: {line}", file=sys.stderr)
        return 1
    return 0


def worker_config(config: MediaServerConfig, index: int) -> MediaServerConfig:
    return dataclasses.replace(
        config,
        port=config.port + index,
        udp_port=config.udp_port + index,
        node_id=f"{config.node_id}-{index}",
    )


def _workers(config_path: str | None, workers: int) -> int:
    """One process per worker, stopped together; SIGTERM reaches each once and
    they drain for as long as their calls last."""
    base = [sys.executable, "-m", "mediaserver"]
    if config_path:
        base += ["--config", config_path]
    children = [subprocess.Popen([*base, "--worker", str(i)]) for i in range(workers)]  # noqa: S603
    return supervise(children, stop_timeout=None)


def ssl_context(config: MediaServerConfig) -> ssl.SSLContext | None:
    """WSS/HTTPS when a certificate is configured; browsers on https pages need it."""
    if not config.tls_cert_file:
        return None
    return server_context(
        config.tls_cert_file,
        config.tls_key_file,
        ("[mediaserver] tls_cert_file", "[mediaserver] tls_key_file"),
    )


async def serve(config: MediaServerConfig, tls: ssl.SSLContext | None) -> None:
    app = create_app(config)
    app.on_response_prepare.append(hide_server_version)
    # aiohttp closes a connection still waiting for a whole request when its
    # keep-alive time runs out (also before the first one): a header timeout
    runner = web.AppRunner(
        app, handle_signals=False, keepalive_timeout=config.header_timeout_seconds
    )
    await runner.setup()
    await web.TCPSite(runner, config.host, config.port, ssl_context=tls).start()
    log.info("media_server_listening", host=config.host, port=config.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    await stop.wait()
    drained = await drain(app, config.drain_timeout_seconds)
    log.info("media_worker_stopping", drained=drained)
    await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
