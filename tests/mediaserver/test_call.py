"""Real aiortc peers through the real SFU: media arrives and decodes."""

from __future__ import annotations

from mediaserver.api import ROOMS
from mediaserver.app import STATS
from tests.helpers import wait_for
from tests.mediaserver.client import decodes, join
from tests.mediaserver.conftest import create_room, metric


async def test_two_parties_then_interpreter_receive_each_other(server, clients, token):
    """Agent and (admitted) citizen decode each other's video at the sent size and
    receive each other's audio; an interpreter then receives both."""
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    citizen = await join(clients, server, token, "citizen", "c1", width=352, height=288)
    await agent.send({"type": "admit", "participant_id": "c1"})
    await wait_for(lambda: decodes(agent, 352, 288), 20, "agent decodes citizen")
    await wait_for(lambda: decodes(citizen), 20, "citizen decodes agent")

    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(
        lambda: (
            len(interpreter.got("video")) == 2
            and all(r.frames > 3 for r in interpreter.got("video"))
            and all(r.frames > 3 for r in interpreter.got("audio"))
        ),
        20,
        "interpreter receives agent and citizen",
    )
    sizes = sorted(r.size or (0, 0) for r in interpreter.got("video"))
    assert sizes == [(320, 240), (352, 288)]
    assert (
        await metric(server, "beeldbel_media_forwarded_packets_total", kind="video") > 0
    )
    assert await metric(server, "beeldbel_media_participants", role="interpreter") == 1
    # the C path times a sample of datagrams from the kernel's receive to sent
    latency = "beeldbel_media_sfu_latency_seconds"
    assert await metric(server, latency + "_count") > 0
    assert (
        0
        < await metric(server, latency + "_sum")
        / await metric(server, latency + "_count")
        < 0.5
    )


async def test_h264_room_forwards_h264(server, clients, token):
    """A room created for H264 negotiates constrained baseline (42e01f) only."""
    await create_room(server, video_codec="H264")
    agent = await join(clients, server, token, "agent", "a1")
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(agent) and decodes(interpreter), 20, "H264 media")
    for client in (agent, interpreter):
        for transceiver in client.pc.getTransceivers():
            if transceiver.kind == "video":
                codec = transceiver._codecs[0]
                assert codec.mimeType == "video/H264"
                assert codec.parameters["profile-level-id"] == "42e01f"


async def test_three_join_at_once(server, clients, token):
    """Participants added while a renegotiation is in flight get their own
    (next) negotiation; every leg forwards."""
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    citizen = await join(clients, server, token, "citizen", "c1")
    await agent.send({"type": "admit", "participant_id": "c1"})
    interpreter = await join(clients, server, token, "interpreter", "i1")
    everyone = (agent, citizen, interpreter)
    await wait_for(
        lambda: all(decodes(client, publishers=2) for client in everyone),
        20,
        "everyone decodes both others",
    )
    assert "unknown_payload_type" not in server.app[STATS].dropped


async def test_reconnect_replaces_the_earlier_connection(server, clients, token):
    """The same participant joining again (no ICE restart: a new join) takes over:
    the old connection is told so, media flows to and from the new one."""
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    first = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(first) and decodes(agent), 20, "first call")
    second = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: first.has_message("removed"), 5, "old connection told")
    await wait_for(lambda: decodes(second), 20, "new connection receives")
    await wait_for(
        lambda: sum(r.frames > 3 for r in agent.got("video")) == 2,
        20,
        "agent receives the new connection",
    )
    # the old connection going away must not take the new one with it
    await first.close()
    room = server.app[ROOMS].get("r1")
    await wait_for(lambda: first.ws is not None and first.ws.closed, 5, "old ws closed")
    frames = second.got("video")[0].frames
    await wait_for(
        lambda: second.got("video")[0].frames > frames + 5, 10, "new one goes on"
    )
    assert set(room.participants) == {"a1", "i1"}
    assert room.participants["i1"].peer.pc.connectionState == "connected"


async def test_aiortcs_own_rtcp_loops_do_not_run_on_the_server(server, clients, token):
    """aiortc's senders and receivers would each build a report every 0.5-1.5 s
    for the muted transport to drop (``quiet_rtcp``): their loops end at once, on
    the first negotiation and on the m-lines added later, and the call still
    ends (aiortc's ``stop()`` waits for them)."""
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    citizen = await join(clients, server, token, "citizen", "c1")
    await agent.send({"type": "admit", "participant_id": "c1"})
    await wait_for(lambda: decodes(agent) and decodes(citizen), 20, "both decode")
    room = server.app[ROOMS].get("r1")
    assert room is not None
    peers = [p.peer.pc for p in room.participants.values()]
    tasks = [
        getattr(endpoint, f"_{type(endpoint).__name__}__rtcp_task")
        for pc in peers
        for transceiver in pc.getTransceivers()
        for endpoint in (transceiver.sender, transceiver.receiver)
    ]
    started = [task for task in tasks if task is not None]
    # each participant's two published and two forwarded m-lines started
    assert len(started) >= 8
    assert all(task.done() for task in started)
    await server.app[ROOMS].end("r1")
    assert all(pc.connectionState == "closed" for pc in peers)
