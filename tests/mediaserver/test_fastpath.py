"""The C path (mediaserver/fastpath/) against the Python reference path.

The same SRTP datagrams go through two identical publisher → subscriber setups with
real libsrtp sessions: one through ``PeerMedia.handle_datagram`` (Python), one
through ``PeerMedia.fast_handle`` (the C path, which sends on a real UDP socket).
What the subscriber receives, the send history, the receive statistics and every
counter must be the same.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

import pylibsrtp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pylibsrtp import Policy, Session

from mediaserver import packet as rtp
from mediaserver.forwarder import ForwarderStats, PeerMedia
from mediaserver.leg import LegInfo, OutboundLeg
from mediaserver.stream import InboundStream, StreamInfo
from mediaserver.transport import DirectSrtp, MediaTransport
from tests.mediaserver.packets import rtp_packet

VIDEO, RTX, AUDIO, UNKNOWN = 0x1111, 0x2222, 0x3333, 0x4444
CLIENT_KEY, PUBLISHER_KEY, SUBSCRIBER_KEY = (
    os.urandom(30),
    os.urandom(30),
    os.urandom(30),
)


def inbound(key: bytes) -> Session:
    return Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))


def outbound(key: bytes) -> Session:
    return Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))


def vp8(seq: int, keyframe: bool = False, ext: bytes = b"", pad: int = 0) -> bytes:
    descriptor = bytes([0x90, 0x80, 0x80, seq & 0xFF])
    body = bytes((seq * 7 + i) & 0xFF for i in range(200))
    payload = descriptor + bytes([0x00 if keyframe else 0x01]) + body
    return rtp_packet(
        seq=seq, ts=3000 * seq, ssrc=VIDEO, pt=96, payload=payload, ext=ext, pad=pad
    )


def datagrams() -> list[bytes | str]:
    """What the publisher sends, protected once; strings switch the lobby."""
    client = outbound(CLIENT_KEY)
    plain: list[bytes | str] = [
        vp8(100),  # no keyframe yet: the leg waits
        vp8(101, keyframe=True),
        vp8(102, ext=b"\x10\xff\x00\x00", pad=4),  # extension stripped, padding kept
        vp8(105),  # 103 and 104 lost: NACK to the publisher
        rtp_packet(seq=7, ssrc=RTX, pt=97, payload=struct.pack("!H", 103) + b"late"),
        rtp_packet(seq=1, ssrc=UNKNOWN, pt=96),
        rtp_packet(seq=106, ts=3000 * 106, ssrc=VIDEO, pt=100),  # unknown type
        rtp_packet(seq=5000, ssrc=AUDIO, pt=111, payload=b"opus" * 20),
        "lobby",
        vp8(107),
        "admit",
        vp8(108),
        rtp_packet(seq=109, ssrc=VIDEO, pt=96, pad=1)[:-1] + b"\x00",  # malformed
        vp8(110, keyframe=True),
    ]
    protected: list[bytes | str] = []
    for item in plain:
        protected.append(item if isinstance(item, str) else client.protect(item))
    sr = rtp.build_sr(VIDEO, 0x1234_5678_9ABC_DEF0, 3000 * 110, 9, 900)
    protected.append(client.protect_rtcp(sr))
    protected.append(b"\x80" + bytes(60))  # fails SRTP authentication
    return protected


@dataclass
class Setup:
    stats: ForwarderStats
    publisher: PeerMedia
    subscriber: PeerMedia
    stream: InboundStream
    leg: OutboundLeg
    to_publisher: list[bytes] = field(default_factory=list)
    to_subscriber: list[bytes] = field(default_factory=list)


def setup() -> Setup:
    stats = ForwarderStats()
    publisher = PeerMedia(MediaTransport(), stats)
    publisher.rtcp_ssrc = 0xFEED
    publisher.transport._rx = DirectSrtp(inbound(CLIENT_KEY))
    publisher.transport._tx = DirectSrtp(outbound(PUBLISHER_KEY))
    publisher.forwarding = True
    video = StreamInfo("video", VIDEO, RTX, {96: "video/vp8"}, {97: 96}, 90000)
    stream = publisher.add_stream(video)
    audio = publisher.add_stream(
        StreamInfo("audio", AUDIO, None, {111: "audio/opus"}, {}, 48000)
    )
    subscriber = PeerMedia(MediaTransport(), stats)
    subscriber.transport._tx = DirectSrtp(outbound(SUBSCRIBER_KEY))
    result = Setup(stats, publisher, subscriber, stream, None)  # type: ignore[arg-type]
    publisher.transport._sendto = lambda data, addr: result.to_publisher.append(data)
    subscriber.transport._sendto = lambda data, addr: result.to_subscriber.append(data)
    result.leg = subscriber.add_leg(
        stream, LegInfo(0xA1, 0xA2, {"video/vp8": 98}, {98: 99})
    )
    audio_leg = subscriber.add_leg(audio, LegInfo(0xB1, 0xB2, {"audio/opus": 109}, {}))
    for leg in (result.leg, audio_leg):
        leg.ts_offset = 12345
        leg._first_seq = 40000
    return result


def run(
    handle_of: str,
    udp: tuple[socket.socket, socket.socket] | None = None,
    items: list[bytes | str] | None = None,
) -> Setup:
    s = setup()
    if udp is not None:
        attach(s, udp)
    for item in datagrams() if items is None else items:
        feed(s, handle_of, item)
    if udp is not None:
        # RTP the C path sent on the socket, in order, before RTCP the Python path sent
        while True:
            try:
                s.to_subscriber.append(udp[1].recv(4096))
            except BlockingIOError:
                break
    return s


def attach(s: Setup, udp: tuple[socket.socket, socket.socket]) -> None:
    """Both peers on the C path, sending on ``udp``'s first socket."""
    sender, receiver = udp
    host, port = receiver.getsockname()
    rx, tx = s.subscriber.transport._rx, s.subscriber.transport._tx
    assert tx is not None
    s.subscriber.attach(tx.address, tx.address, (rx, tx), sender.fileno(), host, port)
    prx, ptx = s.publisher.transport._rx, s.publisher.transport._tx
    assert prx is not None
    assert ptx is not None
    s.publisher.attach(prx.address, ptx.address, (prx, ptx), sender.fileno(), host, 9)


def feed(s: Setup, handle_of: str, item: bytes | str) -> None:
    if item == "lobby":
        s.publisher.forwarding = False
    elif item == "admit":
        s.publisher.forwarding = True
    else:
        assert isinstance(item, bytes)
        getattr(s.publisher, handle_of)(item)


def plain(datagrams: list[bytes]) -> list[bytes]:
    session = inbound(SUBSCRIBER_KEY)
    return [
        session.unprotect_rtcp(d) if rtp.is_rtcp(d) else session.unprotect(d)
        for d in datagrams
    ]


@pytest.fixture
def udp() -> Iterator[tuple[socket.socket, socket.socket]]:
    sender, receiver = udp_pair()
    yield sender, receiver
    sender.close()
    receiver.close()


def rtp_of(datagrams: list[bytes]) -> list[bytes]:
    return [p for p in plain(datagrams) if not rtp.is_rtcp(p)]


def rtcp_of(datagrams: list[bytes]) -> list[bytes]:
    return [p for p in plain(datagrams) if rtp.is_rtcp(p)]


COUNTERS = (
    "packets_in",
    "bytes_in",
    "packets_out",
    "bytes_out",
    "forwarded",
    "dropped",
    "pli",
    "nack",
)


def test_the_c_path_does_what_the_python_path_does(udp):
    python = run("handle_datagram")
    c = run("fast_handle", udp)

    # the C harness sends on a socket, its Python fallback (RTX) to a list
    forwarded = sorted(rtp_of(python.to_subscriber), key=lambda p: p[2:4])
    assert sorted(rtp_of(c.to_subscriber), key=lambda p: p[2:4]) == forwarded
    # what was forwarded: the keyframe on, the RTX repair of 103, audio from the start
    by_ssrc = {
        ssrc: [rtp.parse_rtp(p) for p in forwarded if rtp.parse_rtp(p).ssrc == ssrc]
        for ssrc in (0xA1, 0xB1)
    }
    # video 101, 102, 103 (RTX repair), 105, 108, 110; audio from its first packet
    assert [h.sequence_number - 40000 for h in by_ssrc[0xA1]] == [0, 1, 2, 4, 7, 9]
    assert [h.sequence_number for h in by_ssrc[0xB1]] == [5000]  # audio: no offset
    assert {h.payload_type for h in by_ssrc[0xA1]} == {98}
    second = next(p for p in forwarded if p[2:4] == (40001).to_bytes(2, "big"))
    assert not second[0] & 0x10  # extension stripped
    assert second[-1] == 4  # padding kept
    assert sorted(rtcp_of(c.to_subscriber)) == sorted(rtcp_of(python.to_subscriber))
    assert c.to_publisher == python.to_publisher  # PLI, NACK for 103-104

    for name in COUNTERS:
        assert getattr(c.stats, name) == getattr(python.stats, name), name
    assert c.stats.keyframes == python.stats.keyframes == 2
    assert python.stats.dropped == {
        "awaiting_keyframe": 1,
        "unknown_ssrc": 1,
        "unknown_payload_type": 1,
        "lobby": 1,
        "malformed": 1,
        "srtp": 1,
    }
    assert python.stats.nack["to_publisher"] == 2  # 103-104, and 109 (malformed)
    for attr in ("_max_seq", "_cycles", "_base_seq", "_received"):
        assert getattr(c.stream, attr) == getattr(python.stream, attr), attr
    assert c.stream._jitter > 0
    assert python.stream._jitter > 0
    assert c.leg.history == python.leg.history
    assert (c.leg.packets, c.leg.octets, c.leg.started, c.leg.seq_offset) == (
        python.leg.packets,
        python.leg.octets,
        True,
        python.leg.seq_offset,
    )


def test_counts_stay_with_the_stats_they_were_counted_for(udp):
    """The C path keeps its audio and video counts in C until the call ends:
    two servers' stats in one process, fed in turn, each get their own."""
    python = run("handle_datagram")
    one, two = setup(), setup()
    attach(one, udp)
    attach(two, udp)
    for item in datagrams():
        feed(one, "fast_handle", item)
        feed(two, "fast_handle", item)
    for name in COUNTERS:
        wanted = getattr(python.stats, name)
        assert getattr(one.stats, name) == getattr(two.stats, name) == wanted, name
    assert one.stats.forwarded["video"] > 0


def test_a_detached_peer_takes_the_python_path():
    s = setup()
    assert not s.publisher.attached
    datagram = outbound(CLIENT_KEY).protect(vp8(1, keyframe=True))
    s.publisher.fast_handle(datagram)  # no SRTP contexts in C: handed to Python
    assert s.stats.forwarded["video"] == 1
    assert len(s.to_subscriber) == 1


def udp_pair() -> tuple[socket.socket, socket.socket]:
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for sock in (sender, receiver):
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
    return sender, receiver


#: an RTP packet a peer could send: mostly plausible headers (with or without
#: extension, padding, CSRCs), a known SSRC and payload type so that they get
#: past routing, and sometimes a VP8 keyframe start; any bytes after that
rtp_like = st.builds(
    lambda first, marker_pt, seq, ssrc, start, body: (
        (bytes([0x80 | (first & 0x3F), marker_pt]) + struct.pack("!HII", seq, 0, ssrc))
        + start
        + body
    ),
    st.sampled_from([0x80, 0x90, 0xA0, 0xB0, 0x81]) | st.integers(0, 255),
    st.sampled_from([96, 97, 100, 111, 0x80 | 96]) | st.integers(0, 255),
    st.integers(0, 0xFFFF),
    st.sampled_from([VIDEO, RTX, AUDIO]) | st.integers(0, 0xFFFFFFFF),
    st.sampled_from([b"", b"\x10\x00", b"\x90\x80\x80\x01\x00"]),
    st.binary(max_size=1300),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(rtp_like, min_size=1, max_size=40))
def test_arbitrary_authenticated_rtp_gets_the_same_treatment(packets):
    """Whatever an authenticated peer sends, the C path neither crashes nor
    differs from the Python path."""
    client = outbound(CLIENT_KEY)
    items: list[bytes | str] = [client.protect(vp8(1, keyframe=True))]
    for packet in packets:
        try:
            items.append(client.protect(packet))
        except pylibsrtp.Error:  # libsrtp will not even authenticate it
            continue
    python = run("handle_datagram", items=items)
    sender, receiver = udp_pair()
    with sender, receiver:
        c = run("fast_handle", (sender, receiver), items=items)
    for name in (
        "packets_in",
        "bytes_in",
        "packets_out",
        "forwarded",
        "dropped",
        "opus_fec",
    ):
        assert getattr(c.stats, name) == getattr(python.stats, name), name
    # same key, same packets in the same order: the same ciphertexts
    assert sorted(c.to_subscriber) == sorted(python.to_subscriber)
    assert c.to_publisher == python.to_publisher


def test_a_half_built_stream_is_an_error_not_a_crash():
    """A Python subclass that has not set what the C path reads yet: the datagram
    is refused with an exception (the drain counts and logs it)."""
    s = setup()
    rx = s.publisher.transport._rx
    assert rx is not None
    s.publisher.attach(rx.address, rx.address, rx, -1, "127.0.0.1", 9)
    s.publisher.streams[VIDEO] = InboundStream.__new__(InboundStream)
    with pytest.raises(TypeError, match="not set up"):
        s.publisher.fast_handle(outbound(CLIENT_KEY).protect(vp8(1, keyframe=True)))


def test_a_half_built_leg_is_an_error_not_a_crash():
    s = setup()
    rx = s.publisher.transport._rx
    assert rx is not None
    s.publisher.attach(rx.address, rx.address, rx, -1, "127.0.0.1", 9)
    s.stream.legs.append(OutboundLeg.__new__(OutboundLeg))
    with pytest.raises(TypeError, match="leg of the fast path"):
        s.publisher.fast_handle(outbound(CLIENT_KEY).protect(vp8(1, keyframe=True)))
