"""ICE servers for a participant: configured STUN URLs and TURN with time-limited
credentials (the TURN REST API coturn implements with ``use-auth-secret``).

Shared by the media server (``joined`` message) and the control plane (token
endpoint), so both hand out the same kind of credentials. Never a public default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any

from beeldbel.config import MediaServerConfig, Secret


def turn_credentials(secret: str, user: str, ttl: int, now: float) -> tuple[str, str]:
    """``(username, credential)``: username is ``expiry:user``, credential is
    base64(HMAC-SHA1(secret, username))."""
    username = f"{int(now) + ttl}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def ice_servers(
    *,
    stun_urls: Sequence[str],
    turn_urls: Sequence[str],
    turn_secret: Secret,
    turn_ttl_seconds: int,
    user: str,
    now: float | None = None,
) -> list[dict[str, Any]]:
    """The ``iceServers`` list for ``RTCPeerConnection``; TURN only with a secret."""
    servers: list[dict[str, Any]] = []
    if stun_urls:
        servers.append({"urls": list(stun_urls)})
    if turn_urls and turn_secret:
        username, credential = turn_credentials(
            turn_secret.reveal(),
            user,
            turn_ttl_seconds,
            time.time() if now is None else now,
        )
        servers.append(
            {"urls": list(turn_urls), "username": username, "credential": credential}
        )
    return servers


def ice_servers_for(
    config: MediaServerConfig, participant: str, now: float | None = None
) -> list[dict[str, Any]]:
    """``iceServers`` from the ``[mediaserver]`` section for ``participant``: what
    the media node sends in ``joined`` and the control plane with a media token."""
    return ice_servers(
        stun_urls=config.stun_urls,
        turn_urls=config.turn_urls,
        turn_secret=config.turn_secret,
        turn_ttl_seconds=config.turn_ttl_seconds,
        user=participant,
        now=now,
    )
