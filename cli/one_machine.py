"""What `beeldbel run` adds so control plane and media server work together on one
machine: settings the config leaves at their defaults are derived from the others
and handed to both processes as ``BEELDBEL_*`` variables."""

from __future__ import annotations

import secrets
from pathlib import Path

from common.config import CallsConfig, Config, MediaServerConfig


def one_machine_environment(config: Config, ca_file: Path | None) -> dict[str, str]:
    """Variables for both child processes; explicit configuration always wins."""
    env: dict[str, str] = {}
    media, calls = config.mediaserver, config.calls
    default_media, default_calls = MediaServerConfig(), CallsConfig()
    if not media.api_secret:
        # both processes must present and expect the same server-to-server secret
        env["BEELDBEL_MEDIASERVER_API_SECRET"] = secrets.token_urlsafe(32)
    public = config.server.public_url.rstrip("/")
    if media.jwks_url == default_media.jwks_url:
        env["BEELDBEL_MEDIASERVER_JWKS_URL"] = f"{public}/.well-known/jwks.json"
    if media.token_issuer == default_media.token_issuer:
        env["BEELDBEL_MEDIASERVER_TOKEN_ISSUER"] = public
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
    node = f"{media.host}:{media.port}"
    if calls.media_ws_url == default_calls.media_ws_url:
        env["BEELDBEL_CALLS_MEDIA_WS_URL"] = f"{'wss' if secure else 'ws'}://{node}/ws"
    if calls.media_api_url == default_calls.media_api_url:
        scheme = "https" if secure else "http"
        env["BEELDBEL_CALLS_MEDIA_API_URL"] = f"{scheme}://{node}"
    return env
