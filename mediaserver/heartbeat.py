"""The node reports itself to the control plane: every ``heartbeat_seconds`` a POST
with its load (rooms, participants, forwarded packets per second, process CPU,
draining) to ``<control_plane_url>/api/internal/media-nodes/<node_id>/heartbeat``,
``Authorization: Bearer <api_secret>``. A node whose heartbeats stop is marked
down there and its calls end, so the beat runs on its own task and a failed post
is only logged (once per run of failures) and tried again at the next beat.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog

from beeldbel.config import MediaServerConfig
from mediaserver.forwarder import ForwarderStats
from mediaserver.room import Rooms

log = structlog.get_logger()

#: Rates over a shorter interval than this (seconds) are not reported.
MIN_INTERVAL = 0.5


@dataclass(slots=True)
class LoadMeter:
    """Turns counters into rates between two heartbeats."""

    rooms: Rooms
    stats: ForwarderStats
    _at: float = field(default_factory=time.monotonic)
    _cpu: float = field(default_factory=time.process_time)
    _packets: int = 0

    def read(self, capacity: int) -> dict[str, Any]:
        now, cpu = time.monotonic(), time.process_time()
        packets = sum(self.stats.forwarded.values())
        elapsed = now - self._at
        # the first beat comes at once: no interval to measure rates over yet
        per_second = 1 / elapsed if elapsed >= MIN_INTERVAL else 0.0
        load = {
            "capacity": capacity,
            "rooms": len(self.rooms.rooms),
            "participants": sum(self.rooms.participants_by_role().values()),
            "packets_per_second": round(
                max(packets - self._packets, 0) * per_second, 1
            ),
            "cpu": round(max(cpu - self._cpu, 0.0) * per_second, 3),
            "draining": self.rooms.draining,
        }
        self._at, self._cpu, self._packets = now, cpu, packets
        return load


def _ssl(config: MediaServerConfig) -> ssl.SSLContext | bool:
    if not config.control_plane_url.startswith("https://"):
        return True
    context = ssl.create_default_context()
    if config.jwks_ca_file:  # the CA of the same control plane
        context.load_verify_locations(config.jwks_ca_file)
    return context


async def beat_forever(
    config: MediaServerConfig, rooms: Rooms, stats: ForwarderStats
) -> None:
    """Post a heartbeat now and every ``heartbeat_seconds`` until cancelled."""
    url = (
        config.control_plane_url.rstrip("/")
        + f"/api/internal/media-nodes/{config.node_id}/heartbeat"
    )
    headers = {"Authorization": f"Bearer {config.api_secret.reveal()}"}
    meter = LoadMeter(rooms, stats)
    context = _ssl(config)
    timeout = aiohttp.ClientTimeout(total=config.heartbeat_seconds)
    failing = False
    async with aiohttp.ClientSession(timeout=timeout) as session:
        while True:
            started = time.monotonic()
            body = meter.read(config.capacity)
            try:
                async with session.post(
                    url, json=body, headers=headers, ssl=context
                ) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
                status, error = 0, type(exc).__name__
            else:
                error = ""
            if status == 204 and failing:
                log.info("heartbeat_restored")
            elif status != 204 and not failing:
                log.warning("heartbeat_failed", status=status, error=error)
            failing = status != 204
            await asyncio.sleep(
                max(0.0, config.heartbeat_seconds - (time.monotonic() - started))
            )
