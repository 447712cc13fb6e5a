"""One UDP port carries every peer."""

from __future__ import annotations

import re

from mediaserver.app import MUX
from tests.helpers import wait_for
from tests.mediaserver.conftest import create_room


async def test_one_udp_port_carries_ten_peers(server, clients, token):
    for n in range(5):
        await create_room(server, f"room{n}")
    peers = []
    for n in range(5):
        for role in ("agent", "interpreter"):
            client = clients(width=64, height=48)
            reply = await client.connect(f"room{n}", token(room=f"room{n}", role=role))
            assert reply["type"] == "joined"
            await client.publish()
            peers.append(client)
    await wait_for(
        lambda: all(p.pc.connectionState == "connected" for p in peers),
        20,
        "all ten peers connect",
    )
    await wait_for(
        lambda: all(any(r.frames > 2 for r in p.got("video")) for p in peers),
        20,
        "every peer receives its partner's video",
    )
    ports = set()
    for peer in peers:
        for line in peer.pc.remoteDescription.sdp.splitlines():
            if match := re.match(r"a=candidate:\S+ \d \w+ \d+ (\S+) (\d+) typ", line):
                ports.add((match[1], int(match[2])))
    assert ports == {("127.0.0.1", server.app[MUX].port)}
    assert server.app[MUX].peer_count == 10
