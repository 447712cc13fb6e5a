"""The adversarial suites attack the real servers: they reuse the control plane's
in-process media node and the media server's own fixtures."""

from tests.controlplane.conftest import media, media_server
from tests.mediaserver.conftest import (
    _loopback_only,
    clients,
    jwks_url,
    make_server,
    media_config,
    registry,
    server,
    signing_key,
    token,
)

__all__ = [
    "_loopback_only",
    "clients",
    "jwks_url",
    "make_server",
    "media",
    "media_config",
    "media_server",
    "registry",
    "server",
    "signing_key",
    "token",
]
