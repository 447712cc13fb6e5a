"""ICE servers handed to a participant: configured STUN URLs and TURN with
time-limited credentials (the TURN REST API coturn implements with
``use-auth-secret``). Never a public default. The algorithm lives in
:mod:`beeldbel.turn`, shared with the control plane."""

from __future__ import annotations

from beeldbel.turn import ice_servers_for, turn_credentials

__all__ = ["ice_servers_for", "turn_credentials"]
