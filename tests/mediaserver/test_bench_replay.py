"""The media bench's replay sender (bench/replay_*.py) through the real SFU: a
1:1 call set up by aiortc, then sent and read by the replay loop; each side
receives the other's audio and video, every forwarded packet is matched to the
packet its publisher sent, and timed."""

from __future__ import annotations

from bench.media_clients import Probe, encode_audio, encode_video
from bench.replay_media import cut
from bench.replay_peer import ReplayPeer, SilentTrack
from bench.replay_receiver import ReplayReceiver
from bench.replay_sender import ReplayLoop
from tests.helpers import wait_for
from tests.mediaserver.conftest import create_room, metric


async def test_replay_sender_call_is_forwarded_and_timed(server, clients, token):
    await create_room(server)
    agent, citizen = clients(), clients()
    for client, role in ((agent, "agent"), (citizen, "citizen")):
        reply = await client.connect("r1", token(role=role, sub=role))
        assert reply["type"] == "joined", reply
        await client.publish(SilentTrack("audio"), SilentTrack("video"))
        if role == "citizen":
            await agent.send({"type": "admit", "participant_id": "citizen"})
    await wait_for(
        lambda: all(
            c.pc.connectionState == "connected"
            and len(c.pc.getTransceivers()) == 4
            and c.pc.signalingState == "stable"
            for c in (agent, citizen)
        ),
        20,
        "both connected, each with the other's tracks",
    )
    probe = Probe(recording=True)
    replay = ReplayLoop(
        cut(encode_video(160, 120, 100_000), encode_audio(), 30),
        ReplayReceiver(probe),
        0.002,
    )
    replay.add_room([ReplayPeer(agent, 0), ReplayPeer(citizen, 1)])
    replay.start()
    try:
        await wait_for(
            lambda: len(probe.streams) == 4 and len(probe.latencies) > 600,
            20,
            "each side receives and times the other's audio and video",
        )
    finally:
        await replay.stop()
        replay.receiver.close()
    tally = probe.tally(2, 0.0, replay)
    # two streams each way: four streams received, nothing lost on loopback
    assert len(probe.streams) == 4, probe.streams.keys()
    assert tally.received > 0.9 * replay.counters[0] > 400
    assert tally.expected - tally.received <= 2
    # every forwarded packet matched to its publisher's packet and timed
    assert tally.unmatched == tally.mistimed == 0
    assert len(tally.latencies) == tally.received
    latencies = sorted(tally.latencies)
    assert 0 < latencies[len(latencies) // 2] < 1
    assert await metric(server, "beeldbel_media_forwarded_packets_total", kind="video")
    # STUN still reaches aioice: both connections stay up
    assert agent.pc.connectionState == citizen.pc.connectionState == "connected"
