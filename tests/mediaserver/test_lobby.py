"""The lobby holds a citizen's media until an agent admits them."""

from __future__ import annotations

from mediaserver.app import STATS
from tests.helpers import wait_for
from tests.mediaserver.client import decodes, join
from tests.mediaserver.conftest import create_room, metric


async def test_citizen_media_is_held_until_admitted(server, clients, token):
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    citizen = await join(clients, server, token, "citizen", "c1")
    assert citizen.messages[0]["state"] == "lobby"

    await wait_for(
        lambda: citizen.pc.connectionState == "connected", 10, "citizen connects"
    )
    await wait_for(lambda: agent.has_message("participants"), 5, "agent sees the lobby")

    # media reaches the server and is dropped there; nobody receives it
    stats = server.app[STATS]
    await wait_for(lambda: stats.dropped.get("lobby", 0) > 20, 10, "citizen media held")
    assert await metric(server, "beeldbel_media_dropped_packets_total", reason="lobby")
    assert agent.received == []
    assert citizen.received == []

    await agent.send({"type": "admit", "participant_id": "c1"})
    await wait_for(lambda: citizen.has_message("admitted"), 5, "citizen admitted")
    await wait_for(lambda: decodes(agent), 20, "agent decodes citizen after admission")
    await wait_for(
        lambda: decodes(citizen), 20, "citizen decodes agent after admission"
    )


async def test_only_an_agent_may_admit(server, clients, token):
    await create_room(server)
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await join(clients, server, token, "citizen", "c1")
    await interpreter.send({"type": "admit", "participant_id": "c1"})
    await wait_for(
        lambda: any(m.get("code") == "forbidden" for m in interpreter.messages),
        5,
        "interpreter is refused",
    )


async def test_agent_removes_participant_and_ends_room(server, clients, token):
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    citizen = await join(clients, server, token, "citizen", "c1")
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await agent.send({"type": "remove", "participant_id": "c1"})
    await wait_for(lambda: citizen.has_message("removed"), 5, "citizen removed")
    await agent.send({"type": "end"})
    await wait_for(lambda: interpreter.has_message("room_ended"), 5, "room ended")
    assert await metric(server, "beeldbel_media_rooms") == 0
