"""One aiortc peer taken over by the replay sender once it is connected: its
selected ICE pair's socket (a duplicate descriptor, read and written directly),
its SRTP sessions from aiortc's DTLS transport, and what its negotiation says
(payload types, SSRCs, header extension ids).

aiortc still owns the connection: the DTLS handshake was its, its RTCP loops
still send sender and receiver reports, and STUN read from the socket is handed
to aioice's protocol so consent checks are answered and made. Only reading from
the socket moves here (aioice's transport is paused), so no media datagram goes
through aioice's queue and aiortc's DTLS receive loop any more.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any, cast

import pylibsrtp
from aiortc import MediaStreamTrack, RTCRtpTransceiver
from pylibsrtp._binding import ffi as _ffi
from pylibsrtp._binding import lib as _lib

from tests.mediaserver.client import MediaClient

SO_RCVBUFFORCE = 33  # Linux; the socket module does not name them
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


class SilentTrack(MediaStreamTrack):
    """A track that never yields a frame: aiortc's sender loop for it waits for
    good, while the replay sender sends on its SSRC."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[None] | None = None

    async def recv(self) -> Any:
        self._never = asyncio.get_running_loop().create_future()
        await self._never
        raise AssertionError("unreachable")


class ReplayPeer:
    """A connected client's socket, SRTP sessions and negotiated parameters."""

    def __init__(self, client: MediaClient, number: int) -> None:
        self.client = client
        #: the probe's key for this peer's received streams
        self.number = number
        transceivers = client.pc.getTransceivers()
        dtls = transceivers[0].sender.transport  # max-bundle: one for all
        self.tx_srtp: pylibsrtp.Session = dtls._tx_srtp
        self.rx_srtp: pylibsrtp.Session = dtls._rx_srtp
        assert dtls.state == "connected", "DTLS (and so SRTP) not up yet"
        pair = dtls.transport._connection._nominated[1]
        self.protocol = pair.protocol
        self.remote_addr: tuple[str, int] = pair.remote_addr
        # a selector datagram transport: it can pause reading
        self._transport = cast(Any, self.protocol.transport)
        fd = self._transport.get_extra_info("socket").fileno()
        self.sock = socket.socket(fileno=os.dup(fd))
        self.sock.setblocking(False)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # the pair's only remote: send() then skips parsing an address each time
        self.sock.connect(self.remote_addr)
        self._transport.pause_reading()
        #: payload type → kind, of everything this peer negotiated
        self.kinds: dict[int, str] = {
            codec.payloadType: t.kind
            for t in transceivers
            for codec in t._codecs
            if codec.payloadType is not None
        }
        #: its RTX payload types: retransmissions and padding, neither timed
        #: nor counted in loss
        self.rtx_types = {
            codec.payloadType
            for t in transceivers
            for codec in t._codecs
            if codec.mimeType.lower().endswith("/rtx")
        }
        self.rtcp_received = self.rtx_received = 0
        # pylibsrtp's own buffer and context (Session.__process, inlined)
        session: Any = self.tx_srtp
        self.context = session._srtp[0]
        self.cdata = session._cdata
        self.buffer = session._buffer
        self.view = memoryview(session._buffer)
        self.length = _ffi.new("int *")
        self.srtp_protect = _lib.srtp_protect

    def protect(self, packet: bytes) -> memoryview:
        """``tx_srtp.protect`` without its wrapper's checks and allocations: the
        packet protected in the session's own buffer, valid until the next call
        (the caller sends it at once)."""
        size = len(packet)
        self.length[0] = size
        self.buffer[0:size] = packet
        result = self.srtp_protect(self.context, self.cdata, self.length)
        if result:
            raise pylibsrtp.Error(f"srtp_protect: {result}")
        return self.view[: self.length[0]]

    def sending(self) -> list[RTCRtpTransceiver]:
        """The transceivers this peer publishes on (a silent track each)."""
        return [
            t
            for t in self.client.pc.getTransceivers()
            if isinstance(t.sender.track, SilentTrack)
        ]

    def datagram_for_aioice(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """STUN (and anything else not SRTP) goes where it would have gone."""
        self.protocol.datagram_received(data, addr)

    def close(self) -> None:
        """Hand reading back to aioice (for a clean DTLS close) and drop our
        descriptor."""
        if not self._transport.is_closing():
            self._transport.resume_reading()
        self.sock.close()
