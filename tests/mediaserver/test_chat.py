"""Text chat over the ``chat`` data channel, relayed by the SFU to admitted peers."""

from __future__ import annotations

import json
from typing import Any

from aiortc import AudioStreamTrack, RTCDataChannel
from aiortc.rtcsctptransport import WEBRTC_STRING
from hypothesis import given
from hypothesis import strategies as st

from mediaserver.chat import BURST, MAX_TEXT, SIGNAL_BURST, parse_text
from tests.helpers import wait_for
from tests.mediaserver.client import MediaClient, PatternTrack, decodes
from tests.mediaserver.conftest import create_room, metric

CHAT_METRIC = "beeldbel_media_chat_messages_total"


class ChatPeer:
    """A test participant with a ``chat`` channel opened before its first offer."""

    def __init__(self, client: MediaClient, channel: RTCDataChannel) -> None:
        self.client = client
        self.channel = channel
        self.received: list[Any] = []
        self.channel.on("message", self.received.append)

    def texts(self) -> list[str]:
        """The chat lines received (not typing or state signals)."""
        messages = [json.loads(m) for m in self.received]
        return [m["text"] for m in messages if "type" not in m]

    def send(self, message: Any) -> None:
        self.channel.send(
            message if isinstance(message, str | bytes) else json.dumps(message)
        )

    async def opened(self) -> None:
        await wait_for(
            lambda: self.channel.readyState == "open", 10, "chat channel opens"
        )


async def chat_join(clients, token, role: str, sub: str) -> ChatPeer:
    client = clients()
    reply = await client.connect("r1", token(role=role, sub=sub))
    assert reply["type"] == "joined", reply
    # as web/static/js/protocol.js does: camera and microphone, then the channel
    pc = client.pc
    pc.addTrack(AudioStreamTrack())
    pc.addTrack(PatternTrack(client.width, client.height))
    peer = ChatPeer(client, pc.createDataChannel("chat", ordered=True))
    await pc.setLocalDescription(await pc.createOffer())
    await client.send({"type": "offer", "sdp": pc.localDescription.sdp})
    await peer.opened()
    return peer


async def test_two_admitted_peers_chat_both_ways_with_server_set_roles(
    server, clients, token
):
    await create_room(server)
    agent = await chat_join(clients, token, "agent", "a1")
    interpreter = await chat_join(clients, token, "interpreter", "i1")

    # the client's own from_role and participant_id are not trusted
    agent.send({"text": "Goedemiddag", "from_role": "citizen", "participant_id": "x"})
    await wait_for(lambda: interpreter.received, 5, "interpreter gets the message")
    assert json.loads(interpreter.received[0]) == {
        "text": "Goedemiddag",
        "from_role": "agent",
        "participant_id": "a1",
    }
    interpreter.send({"text": "Hallo ✋ 👋"})
    await wait_for(lambda: agent.received, 5, "agent gets the reply")
    assert json.loads(agent.received[0]) == {
        "text": "Hallo ✋ 👋",
        "from_role": "interpreter",
        "participant_id": "i1",
    }
    assert await metric(server, CHAT_METRIC, result="relayed") == 2
    # nobody gets their own message back
    assert len(agent.received) == len(interpreter.received) == 1


async def test_lobby_citizen_neither_sends_nor_receives_until_admitted(
    server, clients, token
):
    await create_room(server)
    agent = await chat_join(clients, token, "agent", "a1")
    citizen = await chat_join(clients, token, "citizen", "c1")
    assert citizen.client.messages[0]["state"] == "lobby"

    citizen.send({"text": "Is daar iemand?"})
    agent.send({"text": "Nog even geduld"})
    await wait_until_metric(server, "dropped", 1)
    await wait_until_metric(server, "relayed", 1)
    assert agent.received == []
    assert citizen.received == []

    await agent.client.send({"type": "admit", "participant_id": "c1"})
    await wait_for(lambda: citizen.client.has_message("admitted"), 5, "admitted")
    citizen.send({"text": "Ik ben er"})
    await wait_for(lambda: agent.received, 5, "agent gets the admitted citizen")
    assert agent.texts() == ["Ik ben er"]
    assert json.loads(agent.received[0])["from_role"] == "citizen"
    agent.send({"text": "Welkom"})
    await wait_for(lambda: citizen.received, 5, "citizen gets the agent")
    assert citizen.texts() == ["Welkom"]


async def wait_until_metric(server, result: str, value: float) -> None:
    async def reached() -> bool:
        return await metric(server, CHAT_METRIC, result=result) >= value

    await wait_for(reached, 5, lambda: f"chat messages {result} reach {value}")


async def test_malformed_and_over_long_messages_are_dropped_and_the_call_goes_on(
    server, clients, token
):
    await create_room(server)
    agent = await chat_join(clients, token, "agent", "a1")
    interpreter = await chat_join(clients, token, "interpreter", "i1")
    await wait_for(lambda: decodes(interpreter.client), 20, "media flows")

    bad: list[Any] = [
        "not json",
        json.dumps(["text"]),
        json.dumps({"text": 42}),
        json.dumps({"text": "   "}),
        json.dumps({"from_role": "agent"}),
        json.dumps({"text": "x" * (MAX_TEXT + 1)}),
        "[" * 5000 + "]" * 5000,
        b'{"text": "binary"}',
    ]
    for message in bad:
        agent.send(message)
    # a text message that is not UTF-8 (aiortc would end the sender's DTLS loop)
    sctp = agent.channel.transport
    sctp._data_channel_queue.append((agent.channel, WEBRTC_STRING, b'{"text":"\xff"}'))
    await sctp._data_channel_flush()
    agent.send({"text": "x" * MAX_TEXT})
    await wait_until_metric(server, "dropped", len(bad) + 1)
    await wait_for(lambda: interpreter.received, 5, "the valid message arrives")
    assert interpreter.texts() == ["x" * MAX_TEXT]
    assert await metric(server, CHAT_METRIC, result="relayed") == 1

    # the call goes on: media and chat still flow
    frames = interpreter.client.got("video")[0].frames
    await wait_for(
        lambda: interpreter.client.got("video")[0].frames > frames + 10,
        10,
        "video keeps flowing after malformed chat",
    )
    agent.send({"text": "nog steeds hier"})
    await wait_for(lambda: len(interpreter.received) == 2, 5, "chat still works")
    assert agent.client.pc.connectionState == "connected"


async def test_a_third_participant_receives_everyones_messages(server, clients, token):
    await create_room(server)
    agent = await chat_join(clients, token, "agent", "a1")
    interpreter = await chat_join(clients, token, "interpreter", "i1")
    citizen = await chat_join(clients, token, "citizen", "c1")
    await agent.client.send({"type": "admit", "participant_id": "c1"})
    await wait_for(lambda: citizen.client.has_message("admitted"), 5, "admitted")

    agent.send({"text": "van de medewerker"})
    interpreter.send({"text": "van de tolk"})
    await wait_for(lambda: len(citizen.received) == 2, 5, "citizen gets both")
    roles = {
        json.loads(m)["from_role"]: json.loads(m)["text"] for m in citizen.received
    }
    assert roles == {"agent": "van de medewerker", "interpreter": "van de tolk"}
    await wait_for(lambda: interpreter.texts() == ["van de medewerker"], 5, "tolk")
    assert agent.texts() == ["van de tolk"]


@given(st.text(max_size=MAX_TEXT + 5))
def test_parse_text_accepts_exactly_the_valid_texts(text):
    valid = bool(text.strip()) and len(text) <= MAX_TEXT
    assert parse_text(json.dumps({"text": text})) == (text if valid else None)
    assert parse_text(json.dumps({"text": text}).encode()) is None


@given(st.text(max_size=200))
def test_parse_text_never_raises(raw):
    result = parse_text(raw)
    assert result is None or isinstance(result, str)


async def test_a_flood_is_cut_to_the_burst(server, clients, token):
    """More than BURST messages at once: the rest are dropped, the call goes on."""
    await create_room(server)
    agent = await chat_join(clients, token, "agent", "a1")
    interpreter = await chat_join(clients, token, "interpreter", "i1")
    for n in range(BURST + 10):
        agent.send({"text": f"bericht {n}"})
    await wait_for(
        lambda: total_counted(server, BURST + 10),
        5,
        "every flooded message is counted",
    )
    relayed = await metric(server, CHAT_METRIC, result="relayed")
    assert BURST <= relayed < BURST + 5  # a few may have been refilled meanwhile
    await wait_for(lambda: len(interpreter.received) == relayed, 5, "relayed arrive")
    assert interpreter.texts()[:BURST] == [f"bericht {n}" for n in range(BURST)]


async def test_a_reconnected_participant_chats_on_its_new_channel(
    server, clients, token
):
    await create_room(server)
    agent = await chat_join(clients, token, "agent", "a1")
    await chat_join(clients, token, "interpreter", "i1")
    again = await chat_join(clients, token, "interpreter", "i1")
    await wait_for(lambda: again.client.pc.connectionState == "connected", 10, "up")
    agent.send({"text": "ben je er nog?"})
    await wait_for(lambda: again.received, 5, "the new connection gets it")
    again.send({"text": "ja"})
    await wait_for(lambda: agent.received, 5, "agent gets the reply")
    assert agent.texts() == ["ja"]


async def total_counted(server, value: int) -> bool:
    relayed = await metric(server, CHAT_METRIC, result="relayed")
    dropped = await metric(server, CHAT_METRIC, result="dropped")
    return relayed + dropped >= value


SIGNAL_METRIC = "beeldbel_media_chat_signals_total"


async def test_typing_and_media_state_are_relayed_with_server_set_roles(
    server, clients, token
):
    """Real-time text (the line being typed) and mute/camera state ride the same
    channel; the server sets who sent them, as for chat."""
    await create_room(server)
    agent = await chat_join(clients, token, "agent", "a1")
    interpreter = await chat_join(clients, token, "interpreter", "i1")
    agent.send({"type": "typing", "text": "Goedem", "from_role": "citizen"})
    agent.send({"type": "typing", "text": ""})  # the line was cleared
    agent.send({"type": "state", "muted": True, "camera": False})
    await wait_for(lambda: len(interpreter.received) == 3, 5, "three signals")
    assert [json.loads(m) for m in interpreter.received] == [
        {
            "type": "typing",
            "text": "Goedem",
            "from_role": "agent",
            "participant_id": "a1",
        },
        {"type": "typing", "text": "", "from_role": "agent", "participant_id": "a1"},
        {
            "type": "state",
            "muted": True,
            "camera": False,
            "from_role": "agent",
            "participant_id": "a1",
        },
    ]
    assert await metric(server, SIGNAL_METRIC, result="relayed") == 3
    # signals are not chat messages: the pilot counts chat use from that metric
    assert await metric(server, CHAT_METRIC, result="relayed") == 0


async def test_bad_signals_are_dropped_and_do_not_use_the_chat_burst(
    server, clients, token
):
    await create_room(server)
    agent = await chat_join(clients, token, "agent", "a1")
    interpreter = await chat_join(clients, token, "interpreter", "i1")
    for bad in (
        {"type": "state", "muted": "yes", "camera": True},
        {"type": "state", "muted": True},
        {"type": "typing", "text": "x" * (MAX_TEXT + 1)},
        {"type": "typing", "text": 5},
        {"type": "shout", "text": "hallo"},
    ):
        agent.send(bad)
    await wait_for(
        lambda: signals_counted(server, "dropped", 5), 5, "five bad signals dropped"
    )
    # a typing flood (a keystroke each) is cut, but leaves the chat its burst
    for n in range(SIGNAL_BURST + 20):
        agent.send({"type": "typing", "text": "x" * n})
    for n in range(BURST):
        agent.send({"text": f"bericht {n}"})
    lines = [f"bericht {n}" for n in range(BURST)]
    await wait_for(lambda: interpreter.texts() == lines, 5, "every chat line arrives")
    assert await metric(server, CHAT_METRIC, result="dropped") == 0


async def signals_counted(server, result: str, value: int) -> bool:
    return await metric(server, SIGNAL_METRIC, result=result) >= value
