"""``python -m controlplane``: parse args, load config, configure logging, serve."""

from __future__ import annotations

import argparse
import os
import ssl
import sys

import structlog
from aiohttp import web

from beeldbel.config import Config, ConfigError, load_config
from beeldbel.http import listen_failure, quiet_server_header
from beeldbel.logging import configure_logging
from beeldbel.tls import refuse_dev_certificate, server_context
from controlplane.app import create_app, create_metrics_app
from controlplane.base.metrics import METRICS
from controlplane.base.settings import CONFIG as CONFIG_KEY
from controlplane.storage.database import DB

log = structlog.get_logger()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="beeldbel controlplane")
    parser.add_argument("--config", help="TOML config file (or BEELDBEL_CONFIG)")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config, os.environ)
        tls = ssl_context(config)
    except ConfigError as exc:
        print(f"beeldbel: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.logging.level, config.logging.format)
    quiet_server_header()
    try:
        web.run_app(
            build(config),
            host=config.server.host,
            port=config.server.port,
            ssl_context=tls,
            access_log=None,
            print=None,
            # aiohttp closes a connection still waiting for a whole request when
            # its keep-alive time runs out (also before the first one): a header
            # timeout
            keepalive_timeout=config.server.header_timeout_seconds,
        )
    except OSError as exc:
        ports = {config.server.port: "[server] port"}
        if config.metrics.port:
            ports[config.metrics.port] = "[metrics] port"
        line = listen_failure(exc, ports)
        if line is None:
            raise
        print(f"beeldbel controlplane: {line}", file=sys.stderr)
        return 1
    return 0


def build(config: Config) -> web.Application:
    """The control plane plus, when configured, its metrics listener."""
    app = create_app(config)
    if config.metrics.port:
        app.cleanup_ctx.append(_metrics_listener)
    return app


async def _metrics_listener(app: web.Application):  # type: ignore[no-untyped-def]
    config = app[CONFIG_KEY]
    from controlplane.calls import refresh_survey_scores
    from controlplane.requests import DESK, refresh_desk_gauges, refresh_queue_depth

    async def refresh() -> None:
        await refresh_queue_depth(app[DB], app[METRICS])
        await refresh_survey_scores(app[DB], app[METRICS])
        idle = config.security.session_idle_minutes
        await refresh_desk_gauges(app[DB], app[METRICS], app[DESK].current, idle)

    runner = web.AppRunner(create_metrics_app(app[METRICS], refresh), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, config.metrics.host, config.metrics.port)
    await site.start()
    log.info("metrics_listening", port=config.metrics.port)
    yield
    await runner.cleanup()


def ssl_context(config: Config) -> ssl.SSLContext | None:
    """HTTPS unless turned off; a missing certificate is a :class:`ConfigError`."""
    if not config.tls.enabled:
        return None
    context = server_context(
        config.tls.cert_file,
        config.tls.key_file,
        ("[tls] cert_file", "[tls] key_file"),
    )
    refuse_dev_certificate(config)
    return context


if __name__ == "__main__":
    sys.exit(main())
