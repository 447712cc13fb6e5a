"""ICE servers handed to a participant: configured STUN URLs and TURN with
time-limited credentials (the TURN REST API coturn implements with
``use-auth-secret``). Never a public default. The algorithm lives in
:mod:`common.turn`, shared with the control plane."""

from __future__ import annotations

from common.turn import ice_servers_for, turn_credentials

__all__ = ["ice_servers_for", "turn_credentials"]
