"""ICE servers handed to a participant: configured STUN URLs and TURN with
time-limited credentials (the TURN REST API coturn implements with
``use-auth-secret``). Never a public default. The algorithm lives in
:mod:`common.turn`, shared with the control plane."""

from __future__ import annotations

from typing import Any

from common.config import MediaServerConfig
from common.turn import ice_servers, turn_credentials

__all__ = ["ice_servers_for", "turn_credentials"]


def ice_servers_for(
    config: MediaServerConfig, participant_id: str, now: float | None = None
) -> list[dict[str, Any]]:
    return ice_servers(
        stun_urls=config.stun_urls,
        turn_urls=config.turn_urls,
        turn_secret=config.turn_secret,
        turn_ttl_seconds=config.turn_ttl_seconds,
        user=participant_id,
        now=now,
    )
