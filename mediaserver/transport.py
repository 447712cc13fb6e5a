"""The short media path's hold on aiortc: raw SRTP datagrams in and out of one peer.

aiortc does ICE and the DTLS handshake. Once DTLS is up, :class:`MediaTransport`
takes the peer's SRTP/SRTCP datagrams straight from aioice's UDP receive callback
(no asyncio queue, no DTLS receive loop) and sends protected datagrams straight to
the nominated candidate pair's socket. aiortc's own senders and receivers are muted:
every RTP/RTCP packet on the wire comes from the forwarder.

This is the only module (with :mod:`mediaserver.udp_mux`) that touches aiortc and
aioice internals; ``tests/mediaserver/test_internals.py`` pins each of them.
Pinned to aiortc 1.16.0 / aioice 0.13.0.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pylibsrtp
from aiortc import (
    RTCDtlsTransport,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSctpTransport,
)
from aiortc.rtcsctptransport import WEBRTC_STRING
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _lib

from mediaserver import _fastpath

#: ``handle(datagram)`` for one SRTP or SRTCP datagram, called synchronously.
DatagramHandler = Callable[[bytes], None]


SrtpError = pylibsrtp.Error


def _address(pointer: Any) -> int:
    return int(_ffi.cast("uintptr_t", pointer))


# the C path calls pylibsrtp's own libsrtp (same library, same contexts)
_fastpath.init(
    _address(_ffi.addressof(_lib, "srtp_protect")),
    _address(_ffi.addressof(_lib, "srtp_unprotect")),
)


def dtls_transport(pc: RTCPeerConnection) -> RTCDtlsTransport:
    """The peer connection's single (BUNDLE) DTLS transport."""
    transceivers = pc.getTransceivers()
    if not transceivers:
        raise RuntimeError("peer connection has no transceiver yet")
    transport: RTCDtlsTransport = transceivers[0].receiver.transport
    return transport


def ice_connection(dtls: RTCDtlsTransport) -> Any:
    """aioice's ``Connection`` under a DTLS transport (private: ``_connection``)."""
    return dtls.transport._connection


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[Any]:
    """The codecs negotiated for a transceiver (private: ``_codecs``)."""
    codecs: list[Any] = transceiver._codecs
    return codecs


def forget_header_extensions(pc: RTCPeerConnection) -> None:
    """Leave aiortc's transceivers no RTP header extension ids (private:
    ``_headerExtensions``).

    aiortc neither sends nor reads our media, but it parses the RTP that reaches
    its DTLS transport (before the forwarder takes over, after it stops) with the
    ids its transceivers held when they started, and each of its offers resets
    them to its own defaults. Those collide with a browser's (aiortc's
    abs-send-time 3 is Chrome's transport-cc 3): a 2-byte transport-cc value read
    as abs-send-time raises ``struct.error``, which ends aiortc's DTLS receive
    loop. Holding none, it skips every extension.
    """
    for transceiver in pc.getTransceivers():
        transceiver._headerExtensions = []


def quiet_rtcp(transceiver: RTCRtpTransceiver) -> None:
    """Keep aiortc's sender and receiver of ``transceiver`` from running their
    RTCP loops (private: ``_run_rtcp``, ``__rtcp_started``, ``__rtcp_exited``).

    Each wakes every 0.5-1.5 s to build a report that the muted DTLS transport
    then drops: four per participant of a 1:1 call, a share of the server's core
    at rest (``bench.media_bench --sender idle``). The forwarder sends the
    reports. The stand-in marks its loop started and exited at once, so that
    aiortc's ``stop()`` (which waits for both) still ends. Call before the
    transceiver starts, i.e. before the negotiation that starts it completes.
    """
    for endpoint, owner in (
        (transceiver.sender, "RTCRtpSender"),
        (transceiver.receiver, "RTCRtpReceiver"),
    ):
        started: asyncio.Event = getattr(endpoint, f"_{owner}__rtcp_started")
        exited: asyncio.Event = getattr(endpoint, f"_{owner}__rtcp_exited")

        async def no_rtcp(
            started: asyncio.Event = started, exited: asyncio.Event = exited
        ) -> None:
            started.set()
            exited.set()

        endpoint._run_rtcp = no_rtcp  # type: ignore[method-assign]


def sender_ssrcs(transceiver: RTCRtpTransceiver) -> tuple[int, int]:
    """The SSRC and RTX SSRC aiortc announced in SDP for a transceiver's sender."""
    sender = transceiver.sender
    return int(sender._ssrc), int(sender._rtx_ssrc)


def drop_undecodable_text(sctp: RTCSctpTransport, on_drop: Callable[[], None]) -> None:
    """Drop data-channel text messages that are not UTF-8 (calling ``on_drop``).

    aiortc decodes them inside the DTLS receive loop (private: ``_receive``), and
    a ``UnicodeDecodeError`` there ends the loop: one bad message would cut the
    sender's data channels. Idempotent per transport.
    """
    if getattr(sctp, "_beeldbel_text_guard", False):
        return
    original = sctp._receive

    async def receive(stream_id: int, pp_id: int, data: bytes) -> None:
        if pp_id == WEBRTC_STRING:
            try:
                data.decode("utf8")
            except UnicodeDecodeError:
                on_drop()
                return
        await original(stream_id, pp_id, data)

    sctp._receive = receive  # type: ignore[method-assign]
    sctp._beeldbel_text_guard = True  # type: ignore[attr-defined]


class DirectSrtp:
    """A pylibsrtp ``Session`` called without its per-call allocation and checks
    (about 1.4 µs less per packet; pins pylibsrtp 1.x's ``_srtp``, ``_cdata``
    and ``_buffer``)."""

    def __init__(self, session: Any) -> None:
        self._session = session  # keeps the C context alive
        self._context = session._srtp[0]
        self._cdata = session._cdata
        self._buffer = session._buffer
        self._length = _ffi.new("int *")
        self._size = len(session._cdata)

    @property
    def address(self) -> int:
        """The libsrtp context, for the C path."""
        return _address(self._context)

    def _run(self, func: Any, data: bytes, trailer: int) -> bytes:
        size = len(data)
        if size > self._size - trailer:
            raise pylibsrtp.Error("packet is too long")
        self._buffer[0:size] = data
        self._length[0] = size
        status = func(self._context, self._cdata, self._length)
        if status:
            raise pylibsrtp.Error(pylibsrtp.ERRORS[status])
        result: bytes = self._buffer[0 : self._length[0]]
        return result

    def protect(self, packet: bytes) -> bytes:
        return self._run(_lib.srtp_protect, packet, pylibsrtp.SRTP_MAX_TRAILER_LEN)

    def protect_rtcp(self, packet: bytes) -> bytes:
        trailer = pylibsrtp.SRTP_MAX_SRTCP_TRAILER_LEN
        return self._run(_lib.srtp_protect_rtcp, packet, trailer)

    def unprotect(self, packet: bytes) -> bytes:
        return self._run(_lib.srtp_unprotect, packet, 0)

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        return self._run(_lib.srtp_unprotect_rtcp, packet, 0)


async def _muted_send_rtp(data: bytes) -> None:
    """aiortc's own RTP/RTCP (trackless senders' SRs, idle receivers' RRs): dropped."""


class MediaTransport:
    """One peer's SRTP datagrams after the DTLS handshake, without asyncio hops."""

    def __init__(self) -> None:
        self._connection: Any = None
        self._rx: DirectSrtp | None = None
        self._tx: DirectSrtp | None = None
        self._original_data_received: Callable[[bytes, int], None] | None = None
        self._sendto: Callable[[bytes, Any], None] | None = None
        self._remote: Any = None
        self._route: Callable[[Any, DatagramHandler | None], None] | None = None
        self._fast_route: Callable[[Any, _fastpath.PeerCore | None], None] | None = None
        self._fast_peer: _fastpath.PeerCore | None = None

    @property
    def started(self) -> bool:
        return self._rx is not None

    @property
    def sending(self) -> bool:
        """Whether :meth:`send_rtp` sends (until :meth:`stop`)."""
        return self._tx is not None

    def start(
        self,
        dtls: RTCDtlsTransport,
        handle: DatagramHandler,
        fast_peer: _fastpath.PeerCore | None = None,
    ) -> None:
        """Take over SRTP from aiortc; call once the DTLS transport is connected.

        On the shared port, ``fast_peer`` (the peer's :class:`PeerMedia`) gets its
        datagrams through the C path, and ``handle`` what that path hands back.
        """
        if dtls.state != "connected":
            raise RuntimeError(f"DTLS is {dtls.state}, not connected")
        self._connection = ice_connection(dtls)
        self._rx = DirectSrtp(dtls._rx_srtp)
        self._tx = DirectSrtp(dtls._tx_srtp)
        original = self._connection.data_received
        self._original_data_received = original

        def data_received(data: bytes, component: int) -> None:
            if 127 < data[0] < 192:
                handle(data)
            else:
                original(data, component)

        self._connection.data_received = data_received
        dtls._send_rtp = _muted_send_rtp  # type: ignore[method-assign]
        pair = self._connection._nominated.get(1)
        if pair is not None:
            self._sendto = pair.protocol.transport.sendto
            self._remote = pair.remote_addr
            # on the shared port, skip aioice's STUN parsing of every datagram
            self._route = getattr(pair.protocol.transport, "route_media", None)
            if self._route is not None:
                self._route(self._remote, handle)
            fileno = getattr(pair.protocol.transport, "fileno", None)
            if fast_peer is not None and fileno is not None:
                host, port = self._remote[0], self._remote[1]
                rx, tx = self._rx, self._tx
                fast_peer.attach(rx.address, tx.address, (rx, tx), fileno(), host, port)
                self._fast_peer = fast_peer
                self._fast_route = pair.protocol.transport.route_fast
                self._fast_route(self._remote, fast_peer)

    def stop(self) -> None:
        self._tx = None
        if self._fast_route is not None:
            self._fast_route(self._remote, None)
            self._fast_route = None
        if self._fast_peer is not None:
            self._fast_peer.detach()
            self._fast_peer = None
        if self._route is not None:
            self._route(self._remote, None)
            self._route = None
        if self._original_data_received is not None:
            self._connection.data_received = self._original_data_received
            self._original_data_received = None

    def unprotect(self, data: bytes) -> bytes:
        if self._rx is None:
            raise RuntimeError("media transport not started")
        return self._rx.unprotect(data)

    def unprotect_rtcp(self, data: bytes) -> bytes:
        if self._rx is None:
            raise RuntimeError("media transport not started")
        return self._rx.unprotect_rtcp(data)

    def send_rtp(self, packet: bytes) -> None:
        """Protect and send one RTP packet to the peer; dropped if not connected."""
        if self._tx is not None:
            self._send(self._tx.protect(packet))

    def send_rtcp(self, packet: bytes) -> None:
        """Protect and send one (compound) RTCP packet to the peer."""
        if self._tx is not None:
            self._send(self._tx.protect_rtcp(packet))

    def _send(self, datagram: bytes) -> None:
        if self._sendto is None:
            return
        self._sendto(datagram, self._remote)
