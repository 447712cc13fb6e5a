"""What `beeldbel run` adds so control plane and media server work together on one
machine: settings the config leaves at their defaults are derived from the others
and handed to both processes as ``BEELDBEL_*`` variables. A media server with
several workers becomes one media node per worker (``[calls] media_nodes``)."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from beeldbel.config import CallsConfig, Config, MediaNodeConfig, MediaServerConfig


def one_machine_environment(config: Config, ca_file: Path | None) -> dict[str, str]:
    """Variables for both child processes; explicit configuration always wins."""
    env: dict[str, str] = {}
    media, calls = config.mediaserver, config.calls
    default_media = MediaServerConfig()
    if not media.api_secret:
        # both processes must present and expect the same server-to-server secret
        env["BEELDBEL_MEDIASERVER_API_SECRET"] = secrets.token_urlsafe(32)
    public = config.server.public_url.rstrip("/")
    if media.jwks_url == default_media.jwks_url:
        env["BEELDBEL_MEDIASERVER_JWKS_URL"] = f"{public}/.well-known/jwks.json"
    if media.token_issuer == default_media.token_issuer:
        env["BEELDBEL_MEDIASERVER_TOKEN_ISSUER"] = public
    if not media.control_plane_url:
        # heartbeats (trusting the CA of jwks_ca_file): a media server that dies
        # is noticed, and the agents on its calls are told
        env["BEELDBEL_MEDIASERVER_CONTROL_PLANE_URL"] = public
    secure = config.tls.enabled or bool(media.tls_cert_file)
    if config.tls.enabled and not media.tls_cert_file:
        # signalling over WSS with the same certificate as the control plane
        env["BEELDBEL_MEDIASERVER_TLS_CERT_FILE"] = config.tls.cert_file
        env["BEELDBEL_MEDIASERVER_TLS_KEY_FILE"] = config.tls.key_file
    if ca_file is not None:
        if not media.jwks_ca_file:
            env["BEELDBEL_MEDIASERVER_JWKS_CA_FILE"] = str(ca_file)
        if not calls.media_api_ca_file:
            env["BEELDBEL_CALLS_MEDIA_API_CA_FILE"] = str(ca_file)
    env.update(_node_environment(config, secure))
    return env


def _node_environment(config: Config, secure: bool) -> dict[str, str]:
    """Where the control plane reaches the media server: one node per worker."""
    media, calls, default_calls = config.mediaserver, config.calls, CallsConfig()
    if calls.media_nodes:
        return {}
    ws, http = ("wss", "https") if secure else ("ws", "http")
    untouched = (calls.media_ws_url, calls.media_api_url) == (
        default_calls.media_ws_url,
        default_calls.media_api_url,
    )
    workers = media.workers or os.cpu_count() or 1  # as the media server counts
    host = reachable_host(media.host, config.server.public_url)
    if workers > 1 and untouched:
        nodes = worker_nodes(media, workers, ws, http, host)
        return {
            "BEELDBEL_CALLS_MEDIA_NODES": json.dumps(
                [dataclasses.asdict(node) for node in nodes]
            )
        }
    env: dict[str, str] = {}
    node = f"{host}:{media.port}"
    if calls.media_ws_url == default_calls.media_ws_url:
        env["BEELDBEL_CALLS_MEDIA_WS_URL"] = f"{ws}://{node}/ws"
    if calls.media_api_url == default_calls.media_api_url:
        env["BEELDBEL_CALLS_MEDIA_API_URL"] = f"{http}://{node}"
    return env


def worker_nodes(
    media: MediaServerConfig, workers: int, ws: str, http: str, host: str
) -> list[MediaNodeConfig]:
    """The nodes of a media server with several workers at ``host``: worker i is
    node ``<node_id>-<i>`` on ``port + i`` (``mediaserver.__main__.worker_config``)."""
    nodes = []
    for i in range(workers):
        address = f"{host}:{media.port + i}"
        node_id = f"{media.node_id}-{i}"
        nodes.append(
            MediaNodeConfig(node_id, f"{http}://{address}", f"{ws}://{address}/ws")
        )
    return nodes


def reachable_host(bind: str, public_url: str) -> str:
    """The host (URL form) at which the media server bound to ``bind`` is reached.

    A wildcard bind (0.0.0.0, ::) is no address to connect to, and no certificate
    covers it: use the host of ``public_url`` instead, the machine's own name that
    its certificate covers (the loopback address when public_url is loopback, as
    in the Docker image and ``make run``)."""
    address = bind
    if _is_wildcard(bind):
        address = urlsplit(public_url).hostname or "127.0.0.1"
    return f"[{address}]" if ":" in address else address


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return host == ""
