"""The SFU's SDP follows the rules on a live connection (issue 14).

Across our answer and every re-offer: a payload type keeps its codec (RFC 3264
§8.3.2, RFC 8843), the ``o=`` line keeps its session id and its version goes up,
and one header extension is negotiated each way with a fixed id (transport-cc on
what the participant publishes; on what the SFU sends, transport-cc too when the
participant offered it, else abs-send-time). A remote
answer's DTLS role is read from the BUNDLE tag's m-section only. The descriptions
are read here with a parser of the test's own, not aiortc's.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiortc import RTCPeerConnection, VideoStreamTrack
from aiortc.rtcicetransport import RTCIceTransport
from aiortc.sdp import SessionDescription
from structlog.testing import capture_logs

from mediaserver.api import ROOMS
from mediaserver.app import STATS
from mediaserver.forwarder import PeerMedia
from mediaserver.peer import Peer
from mediaserver.sdp import (
    ABS_SEND_TIME,
    TRANSPORT_CC,
    ConnectionSdp,
    HeaderExtensionIds,
    bundle_dtls_role,
)
from tests.helpers import wait_for
from tests.mediaserver.client import MediaClient, decodes, join
from tests.mediaserver.conftest import create_room

# what Chrome numbers differently from aiortc: Opus 111, VP8 96 (RTX 97), H264 102…
CHROME_PAYLOAD_TYPES = {96: 111, 97: 96, 98: 97, 99: 102, 100: 103, 101: 106, 102: 107}
CHROME_EXTENSIONS = {
    1: "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
    2: ABS_SEND_TIME,
    3: TRANSPORT_CC,
    4: "urn:ietf:params:rtp-hdrext:sdes:mid",
}


# a parser of the test's own


@dataclass
class Section:
    kind: str
    mid: str
    direction: str
    setup: str | None
    rtpmap: dict[int, str] = field(default_factory=dict)
    apt: dict[int, int] = field(default_factory=dict)
    feedback: dict[int, set[str]] = field(default_factory=dict)
    extmap: dict[int, str] = field(default_factory=dict)

    def meaning(self, pt: int) -> tuple[str, int | None]:
        return self.rtpmap[pt].lower(), self.apt.get(pt)


def sections(sdp: str) -> list[Section]:
    found: list[Section] = []
    for block in re.split(r"\r\n(?=m=)", sdp)[1:]:
        lines = block.split("\r\n")
        values = {"mid": "", "direction": "sendrecv", "setup": None}
        for line in lines:
            if line.startswith("a=mid:"):
                values["mid"] = line[6:]
            elif line in ("a=sendrecv", "a=sendonly", "a=recvonly", "a=inactive"):
                values["direction"] = line[2:]
            elif line.startswith("a=setup:"):
                values["setup"] = line[8:]
        section = Section(lines[0][2:].split()[0], **values)  # type: ignore[arg-type]
        for line in lines:
            if m := re.match(r"a=rtpmap:(\d+) (\S+)", line):
                section.rtpmap[int(m[1])] = m[2]
            elif m := re.match(r"a=fmtp:(\d+) apt=(\d+)", line):
                section.apt[int(m[1])] = int(m[2])
            elif m := re.match(r"a=rtcp-fb:(\d+) (.+)", line):
                section.feedback.setdefault(int(m[1]), set()).add(m[2])
            elif m := re.match(r"a=extmap:(\d+)(?:/\w+)? (\S+)", line):
                section.extmap[int(m[1])] = m[2]
        found.append(section)
    return found


def origin(sdp: str) -> tuple[str, int]:
    m = re.search(r"^o=\S+ (\d+) (\d+) ", sdp, re.MULTILINE)
    assert m, sdp
    return m[1], int(m[2])


def meanings(descriptions: list[str]) -> dict[int, tuple[str, int | None]]:
    """Each payload type's codec over ``descriptions``; fails on any change."""
    seen: dict[int, tuple[str, int | None]] = {}
    for number, sdp in enumerate(descriptions):
        for section in sections(sdp):
            for pt in section.rtpmap:
                meaning = section.meaning(pt)
                assert seen.setdefault(pt, meaning) == meaning, (
                    f"payload type {pt} is {meaning} in m-section {section.mid} of "
                    f"description {number}, was {seen[pt]}"
                )
    return seen


def assert_origin_rules(ours: list[str]) -> None:
    """One session id; the version goes up with each description we send."""
    origins = [origin(sdp) for sdp in ours]
    assert len({session for session, _ in origins}) == 1, origins
    versions = [version for _, version in origins]
    assert all(a < b for a, b in itertools.pairwise(versions)), versions


def assert_extension_rules(
    ours: list[str], published: set[str], transport_cc: int, abs_send_time: int
) -> None:
    """One extension each way, with its id: transport-cc both ways when the
    participant offered it (our own estimate of its downlink), else
    abs-send-time with REMB on what we send."""
    for sdp in ours:
        for section in sections(sdp):
            if section.kind not in ("audio", "video"):
                continue
            unwanted = None
            if transport_cc:
                expected = {transport_cc: TRANSPORT_CC}
                feedback: str | None = "transport-cc"
                unwanted = "goog-remb"
            elif section.mid in published:
                expected, feedback = {}, None
            else:
                expected = {abs_send_time: ABS_SEND_TIME}
                feedback = "goog-remb" if section.kind == "video" else None
                unwanted = "transport-cc"
            assert section.extmap == expected, (section.mid, sdp)
            for pt, rtpmap in section.rtpmap.items():
                fb = section.feedback.get(pt, set())
                if feedback and not rtpmap.lower().startswith("rtx/"):
                    assert feedback in fb, (section.mid, pt, sdp)
                if section.mid not in published and unwanted:
                    assert unwanted not in fb, (section.mid, pt, sdp)


# test clients that number like Chrome


def renumbered(sdp: str, mapping: dict[int, int]) -> str:
    """``sdp`` with its payload types renamed at once (m= lines, rtpmap, fmtp,
    rtcp-fb and apt=)."""

    def pt(m: re.Match[str]) -> str:
        return str(mapping.get(int(m[0]), int(m[0])))

    out = []
    for line in sdp.split("\r\n"):
        if re.match(r"m=(audio|video) ", line):
            head, formats = line.split(" UDP/TLS/RTP/SAVPF ")
            line = f"{head} UDP/TLS/RTP/SAVPF " + re.sub(r"\d+", pt, formats)
        elif m := re.match(r"(a=(?:rtpmap|fmtp|rtcp-fb):)(\d+)(.*)", line):
            rest = re.sub(r"(?<=apt=)\d+", pt, m[3])
            line = f"{m[1]}{mapping.get(int(m[2]), int(m[2]))}{rest}"
        out.append(line)
    return "\r\n".join(out)


def chrome_like_offer(sdp: str) -> str:
    """An aiortc client's offer as Chrome would number it: Chrome's payload types,
    Chrome's extension ids, transport-cc with its feedback."""
    sdp = renumbered(sdp, CHROME_PAYLOAD_TYPES)
    out = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=extmap:"):
            continue
        out.append(line)
        if m := re.match(r"m=(audio|video) ", line):
            ids = [1, 2, 3, 4] if m[1] == "audio" else [2, 3, 4]
            out += [f"a=extmap:{i} {CHROME_EXTENSIONS[i]}" for i in ids]
        elif m := re.match(r"a=rtpmap:(\d+) (?!rtx)", line):
            out.append(f"a=rtcp-fb:{m[1]} transport-cc")
    return "\r\n".join(out)


def taking_every_extension(answer: str, offer: str) -> str:
    """``answer`` taking every header extension ``offer`` made (as Chrome does
    with these two; aiortc leaves out the ones it does not know)."""
    offered = {s.mid: s.extmap for s in sections(offer)}
    blocks = re.split(r"\r\n(?=m=)", answer)
    for i, block in enumerate(blocks[1:], 1):
        (section,) = sections("\r\n" + block)
        head, rest = block.split("\r\n", 1)
        missing = [
            f"a=extmap:{ext_id} {uri}"
            for ext_id, uri in offered.get(section.mid, {}).items()
            if ext_id not in section.extmap
        ]
        blocks[i] = "\r\n".join([head, *missing, rest])
    return "\r\n".join(blocks)


async def chrome_like(
    clients: Callable[..., MediaClient], token: Callable[..., str], role: str, sub: str
) -> MediaClient:
    """An aiortc participant whose SDP looks like Chrome's. It sends with the
    payload types of the answer, so its media flows as Chrome's would."""
    client = clients()
    reply = await client.connect("r1", token(role=role, sub=sub))
    assert reply["type"] == "joined", reply
    client.rewrite_local_sdp = chrome_like_offer
    await client.publish()
    client.rewrite_local_sdp = lambda sdp: taking_every_extension(
        sdp, client.pc.remoteDescription.sdp
    )
    return client


def sent_by_server(client: MediaClient) -> list[str]:
    return [m["sdp"] for m in client.messages if m["type"] in ("answer", "offer")]


@pytest.fixture
def header_extensions(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[Any]]:
    """What each peer told its media path:
    ``{id(media): [(tcc, ast, sent tcc), …]}``."""
    told: dict[int, list[Any]] = {}
    original = PeerMedia.set_header_extensions

    def record(
        self: PeerMedia,
        *,
        transport_cc: int,
        abs_send_time: int,
        sent_transport_cc: int,
    ) -> None:
        told.setdefault(id(self), []).append(
            (transport_cc, abs_send_time, sent_transport_cc)
        )
        original(
            self,
            transport_cc=transport_cc,
            abs_send_time=abs_send_time,
            sent_transport_cc=sent_transport_cc,
        )

    monkeypatch.setattr(PeerMedia, "set_header_extensions", record)
    return told


async def test_a_payload_type_keeps_its_codec_across_reoffers(
    server, clients, token, header_extensions
):
    """Participants numbering like Chrome (Opus 111, VP8 96, RTX 97): a third one
    joining and then leaving makes re-offers, and in every description each
    payload type means what the participant's offer made it mean (aiortc's own
    table has Opus 96, VP8 97). Media flows all along."""
    await create_room(server)
    agent = await chrome_like(clients, token, "agent", "a1")
    interpreter = await chrome_like(clients, token, "interpreter", "i1")
    await wait_for(lambda: decodes(agent) and decodes(interpreter), 20, "two decode")
    third = await chrome_like(clients, token, "interpreter", "i2")
    everyone = (agent, interpreter, third)
    await wait_for(
        lambda: all(decodes(c, publishers=2) for c in everyone), 20, "three decode"
    )
    sent = {c: len(sent_by_server(c)) for c in (agent, interpreter)}
    await third.close()
    await wait_for(
        lambda: all(len(sent_by_server(c)) > n for c, n in sent.items()),
        10,
        "re-offers after the third left",
    )
    frames = agent.got("video")[0].frames
    await wait_for(lambda: agent.got("video")[0].frames > frames + 5, 10, "media on")

    for client in everyone:
        ours = sent_by_server(client)
        assert len(ours) >= 2, ours
        seen = meanings(ours)
        assert seen[111] == ("opus/48000/2", None)
        assert seen[96] == ("vp8/90000", None)
        assert seen[97] == ("rtx/90000", 96)
        assert_origin_rules(ours)
        assert_extension_rules(ours, {"0", "1"}, transport_cc=3, abs_send_time=0)
    assert "unknown_payload_type" not in server.app[STATS].dropped
    # each media path was told the ids once its answer was set, and then each time
    rooms = server.app[ROOMS].get("r1")
    for participant in rooms.participants.values():
        told = header_extensions[id(participant.peer.media)]
        assert told[0] == (3, 0, 0), told
        assert told[-1] == (3, 0, 3), told


async def test_aiortc_holds_no_extension_id_of_its_own(server, clients, token):
    """aiortc parses the RTP that reaches it before the forwarder takes over (and
    after it stops) with the ids its transceivers held when they started, and its
    offers reset those to its defaults: abs-send-time 3, which is Chrome's
    transport-cc (a 2-byte value read as abs-send-time ends aiortc's DTLS receive
    loop), mid 1, which is Chrome's audio level. The second participant answers
    its first re-offer only once DTLS is up (aiortc's transceivers start while our
    offer is out); afterwards aiortc knows no id but abs-send-time's, with the
    connection's id."""
    await create_room(server)
    room = server.app[ROOMS].get("r1")
    agent = await chrome_like(clients, token, "agent", "a1")
    late = clients()
    send = late.send

    async def answer_once_connected(message: dict[str, Any]) -> None:
        if message["type"] == "answer":
            peer = room.participants["i1"].peer
            await wait_for(lambda: peer.media.transport.started, 10, "DTLS up")
        await send(message)

    late.send = answer_once_connected
    await late.connect("r1", token(role="interpreter", sub="i1"))
    late.rewrite_local_sdp = chrome_like_offer
    await late.publish()
    late.rewrite_local_sdp = lambda sdp: taking_every_extension(
        sdp, late.pc.remoteDescription.sdp
    )
    await wait_for(lambda: decodes(agent) and decodes(late), 20, "a call")
    for participant in room.participants.values():
        dtls = participant.peer.pc.getTransceivers()[0].receiver.transport
        known = {
            name: ext_id
            for name, ext_id in vars(
                dtls._rtp_header_extensions_map._HeaderExtensionsMap__ids
            ).items()
            if ext_id is not None
        }
        assert known in ({}, {"abs_send_time": 2}), (participant.id, known)


async def test_extension_ids_follow_the_offer_or_stay_clear_of_it():
    """abs-send-time takes the offer's id, else 2, else the lowest id the offer
    left free; transport-cc is negotiated only when offered, with its id, and
    then both ways, with no abs-send-time."""
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    pc.addTrack(VideoStreamTrack())
    offer = (await pc.createOffer()).sdp
    await pc.close()
    # aiortc offers mid 1, audio level 2, abs-send-time 3, no transport-cc
    rules = ConnectionSdp()
    rules.learn_offer(SessionDescription.parse(offer))
    assert (rules.ids.transport_cc, rules.ids.abs_send_time) == (0, 3)
    without_abs_send_time = "\r\n".join(
        line for line in offer.split("\r\n") if ABS_SEND_TIME not in line
    )
    rules = ConnectionSdp()
    rules.learn_offer(SessionDescription.parse(without_abs_send_time))
    assert (rules.ids.transport_cc, rules.ids.abs_send_time) == (0, 3)
    rules = ConnectionSdp()
    rules.learn_offer(SessionDescription.parse(chrome_like_offer(offer)))
    assert rules.ids == HeaderExtensionIds(
        transport_cc=3, abs_send_time=0, sent_transport_cc=3
    )
    # transport-cc with a two-byte id (15-255): what we send keeps abs-send-time
    two_byte = chrome_like_offer(offer).replace(
        f"a=extmap:3 {TRANSPORT_CC}", f"a=extmap:20 {TRANSPORT_CC}"
    )
    rules = ConnectionSdp()
    rules.learn_offer(SessionDescription.parse(two_byte))
    assert rules.ids == HeaderExtensionIds(
        transport_cc=20, abs_send_time=2, sent_transport_cc=0
    )


def test_new_codecs_get_payload_types_no_description_used():
    """A codec the participant never offered (here RTX for VP8, while the
    participant's offer used 97 and 98 for other codecs) gets a free type."""
    offer = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\nc=IN IP4 0.0.0.0\r\n"
        "a=mid:0\r\na=sendonly\r\na=rtcp-mux\r\n"
        "a=rtpmap:96 VP8/90000\r\na=rtpmap:97 VP9/90000\r\n"
        "a=rtpmap:98 AV1/90000\r\n"
    )
    rules = ConnectionSdp()
    rules.learn_offer(offer)
    ours = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
        "m=video 9 UDP/TLS/RTP/SAVPF 97 98\r\nc=IN IP4 0.0.0.0\r\n"
        "a=mid:1\r\na=sendonly\r\na=rtcp-mux\r\n"
        "a=rtpmap:97 VP8/90000\r\na=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=97\r\n"
    )
    rules.payload_types.renumber(ours.media[0])
    assert ours.media[0].fmt == [96, 99]
    assert [c.payloadType for c in ours.media[0].rtp.codecs] == [96, 99]
    assert ours.media[0].rtp.codecs[1].parameters["apt"] == 96


def test_bundle_dtls_role_is_the_tag_sections():
    answer = (
        "v=0\r\na=group:BUNDLE 0 1 2\r\n"
        "m=audio 9 X 111\r\na=mid:0\r\na=setup:passive\r\n"
        "m=video 9 X 96\r\na=mid:1\r\na=setup:passive\r\n"
        "m=audio 9 X 111\r\na=mid:2\r\na=setup:active\r\n"
        "m=audio 9 X 111\r\na=mid:3\r\na=setup:active\r\n"
    )
    fixed = bundle_dtls_role(answer)
    assert [s.setup for s in sections(fixed)] == [
        "passive",
        "passive",
        "passive",
        "active",  # not in the group: left alone
    ]
    assert bundle_dtls_role(answer.replace("a=group:BUNDLE 0 1 2\r\n", "")) == (
        answer.replace("a=group:BUNDLE 0 1 2\r\n", "")
    )


def firefox_like_answer(own_mids: set[str]) -> Callable[[str], str]:
    """Firefox's answer to a re-offer: ``passive`` where it was, ``active`` on
    the m-sections the offer added, all in one BUNDLE group."""

    def rewrite(sdp: str) -> str:
        blocks = re.split(r"\r\n(?=m=)", sdp)
        for i, block in enumerate(blocks[1:], 1):
            mid = re.search(r"^a=mid:(\S+)\r?$", block, re.MULTILINE)
            if mid and mid[1] not in own_mids:
                blocks[i] = block.replace("a=setup:passive", "a=setup:active")
        return "\r\n".join(blocks)

    return rewrite


async def test_dtls_role_is_taken_from_the_bundle_tag(
    server, clients, token, monkeypatch
):
    """A participant answers our re-offer as Firefox does (``active`` on the new
    m-sections, ``passive`` on the tag), before ICE and DTLS are up: the SFU
    stays the DTLS client and the call works both ways."""
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    late = clients()
    # the participant's ICE waits until its answer to our re-offer was applied
    ice_may_start = asyncio.Event()
    start = RTCIceTransport.start

    async def start_later(self: RTCIceTransport, parameters: Any) -> None:
        if any(
            t.receiver.transport.transport is self for t in late.pc.getTransceivers()
        ):
            await ice_may_start.wait()
        await start(self, parameters)

    monkeypatch.setattr(RTCIceTransport, "start", start_later)
    await late.connect("r1", token(role="interpreter", sub="i1"))
    late.rewrite_local_sdp = firefox_like_answer({"0", "1"})
    await late.publish()
    room = server.app[ROOMS].get("r1")
    await wait_for(
        lambda: (
            "i1" in room.participants
            and room.participants["i1"].subscriptions
            and all(s.leg for s in room.participants["i1"].subscriptions.values())
        ),
        10,
        "our re-offer answered the Firefox way",
    )
    peer = room.participants["i1"].peer
    assert peer.pc.connectionState != "connected"
    ice_may_start.set()
    await wait_for(lambda: decodes(late) and decodes(agent), 20, "media both ways")
    assert peer.pc.getTransceivers()[0].receiver.transport._role == "client"


async def test_a_closing_socket_ends_renegotiation_without_an_error(
    server, clients, token
):
    """One participant leaves while the other's socket is closing: the re-offer
    cannot be written, which is a normal end, not an error with a traceback."""
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(agent) and decodes(interpreter), 20, "a call")
    room = server.app[ROOMS].get("r1")
    staying = room.participants["a1"]
    ws = staying.send.__self__
    send = staying.send

    async def send_while_closing(message: dict[str, Any]) -> None:
        if message["type"] == "offer":
            ws._req.transport.close()  # the agent's connection goes at this moment
        await send(message)

    staying.send = send_while_closing
    with capture_logs() as logs:
        await interpreter.close()
        await wait_for(lambda: not room.participants, 10, "both have left")
    failed = [e for e in logs if e["event"] == "renegotiation_failed"]
    assert not failed, failed
    assert not [e for e in logs if e["log_level"] == "error" or "exc_info" in e], logs
    assert any(e["event"] == "renegotiation_stopped" for e in logs), logs


@pytest.mark.browser
async def test_three_chromium_pages_negotiate_by_the_rules(
    server, token, aiohttp_server, monkeypatch, header_extensions
) -> None:
    """Three Chromium pages through the SFU: the third joining makes re-offers.
    For each connection, a payload type means one codec in Chromium's offer, in
    our answer and offers, and in Chromium's answers; our ``o=`` versions go up;
    Chromium takes transport-cc on what it sends and on what it receives, with
    the id of its own offer. Everyone decodes both others."""
    from tests.mediaserver.sfu_page import chromium, page_url, serve_sfu_page
    from tests.mediaserver.test_browser import inbound

    seen: dict[int, dict[str, Any]] = {}

    def record(peer: Any) -> dict[str, Any]:
        return seen.setdefault(
            id(peer), {"peer": peer, "offer": "", "ours": [], "answers": []}
        )

    answer, offer, accept = Peer.answer, Peer.offer, Peer.accept_answer

    async def answering(self: Peer, sdp: str) -> Any:
        record(self)["offer"] = sdp
        result = await answer(self, sdp)
        record(self)["ours"].append(result[0])
        return result

    async def offering(self: Peer) -> str:
        sdp = await offer(self)
        record(self)["ours"].append(sdp)
        return sdp

    async def accepting(self: Peer, sdp: str) -> None:
        record(self)["answers"].append(sdp)
        await accept(self, sdp)

    monkeypatch.setattr(Peer, "answer", answering)
    monkeypatch.setattr(Peer, "offer", offering)
    monkeypatch.setattr(Peer, "accept_answer", accepting)

    await create_room(server)
    pages_server = await serve_sfu_page(aiohttp_server, server, token)

    async with chromium() as browser:
        pages = []
        for role, sub in (
            ("agent", "a1"),
            ("citizen", "c1"),
            ("interpreter", "i1"),
        ):
            page = await browser.new_page()
            await page.goto(page_url(pages_server, role, sub))
            pages.append(page)
        stats: list[list[dict[str, Any]]] = []

        async def everyone_decodes_both_others() -> bool:
            stats[:] = [await inbound(page) for page in pages]
            return all(
                sum(s["framesDecoded"] > 10 for s in page_stats) == 2
                for page_stats in stats
            ) and all(  # and no offer of ours is waiting for its answer
                len(r["answers"]) == len(r["ours"]) - 1 for r in seen.values()
            )

        await wait_for(
            everyone_decodes_both_others, 40, lambda: f"three pages: {stats}"
        )
        # as it is now: pages closing make more offers
        calls = [
            {**r, "ours": [*r["ours"]], "answers": [*r["answers"]]}
            for r in seen.values()
        ]

    assert len(calls) == 3
    for record_ in calls:
        client_offer, ours, answers = (
            record_["offer"],
            record_["ours"],
            record_["answers"],
        )
        assert len(ours) >= 2, record_
        assert len(answers) == len(ours) - 1, record_
        meanings([client_offer, *ours, *answers])
        assert_origin_rules(ours)
        offered = {
            uri: i for s in sections(client_offer) for i, uri in s.extmap.items()
        }
        published = {s.mid for s in sections(client_offer) if s.kind != "application"}
        tcc = offered[TRANSPORT_CC]
        assert_extension_rules(ours, published, transport_cc=tcc, abs_send_time=0)
        # Chromium took it both ways
        for section in sections(answers[-1]):
            if section.kind == "application":
                continue
            assert section.extmap == {tcc: TRANSPORT_CC}, (section.mid, answers[-1])
        told = header_extensions[id(record_["peer"].media)]
        assert told[-1] == (tcc, 0, tcc), told
