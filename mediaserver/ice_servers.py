"""ICE servers handed to a participant: configured STUN URLs and TURN with
time-limited credentials (the TURN REST API coturn implements with
``use-auth-secret``). Never a public default."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from common.config import MediaServerConfig


def turn_credentials(secret: str, user: str, ttl: int, now: float) -> tuple[str, str]:
    """``(username, credential)``: username is ``expiry:user``, credential is
    base64(HMAC-SHA1(secret, username))."""
    username = f"{int(now) + ttl}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers_for(
    config: MediaServerConfig, participant_id: str, now: float | None = None
) -> list[dict[str, Any]]:
    servers: list[dict[str, Any]] = []
    if config.stun_urls:
        servers.append({"urls": list(config.stun_urls)})
    if config.turn_urls and config.turn_secret:
        username, credential = turn_credentials(
            config.turn_secret.reveal(),
            participant_id,
            config.turn_ttl_seconds,
            time.time() if now is None else now,
        )
        servers.append(
            {
                "urls": list(config.turn_urls),
                "username": username,
                "credential": credential,
            }
        )
    return servers
