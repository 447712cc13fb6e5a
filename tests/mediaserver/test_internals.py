"""Pins every aiortc / aioice internal the media server relies on.

If one of these fails after an upgrade, read mediaserver/transport.py and
mediaserver/udp_mux.py before changing the pin in pyproject.toml.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

import aioice.ice
import aiortc
from aioice.ice import Connection, StunProtocol
from aiortc import (
    RTCDtlsTransport,
    RTCIceTransport,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
)

from mediaserver.packet import is_rtcp as our_is_rtcp


def test_pinned_versions():
    assert version("aiortc") == "1.16.0"
    assert version("aioice") == "0.13.0"


def test_dtls_transport_internals():
    source = inspect.getsource(RTCDtlsTransport)
    # SRTP sessions live on the DTLS transport once the handshake completes
    assert "self._rx_srtp: Session" in source
    assert "self._tx_srtp: Session" in source
    # aiortc's own RTP/RTCP all goes through _send_rtp (we mute it)
    assert inspect.iscoroutinefunction(RTCDtlsTransport._send_rtp)
    # datagrams come from the ICE transport's connection via _recv
    assert "await self.transport._recv()" in source


def test_ice_transport_exposes_its_aioice_connection():
    assert "self._connection = gatherer._connection" in inspect.getsource(
        RTCIceTransport
    )


def test_aioice_connection_internals():
    source = inspect.getsource(Connection)
    # StunProtocol hands every non-STUN datagram to Connection.data_received,
    # synchronously, from the socket's receive callback
    assert "self.receiver.data_received(data, self.local_candidate.component)" in (
        inspect.getsource(StunProtocol.datagram_received)
    )
    assert inspect.signature(Connection.data_received).parameters.keys() == {
        "self",
        "data",
        "component",
    }
    assert "self._nominated: dict[int, CandidatePair] = {}" in source
    assert "self._protocols: list[StunProtocol] = []" in source
    # gathering goes through get_component_candidates (UdpMux.adopt replaces it)
    assert (
        "self.get_component_candidates(component=component, addresses=addresses)"
        in (inspect.getsource(Connection.gather_candidates))
    )
    pair = aioice.ice.CandidatePair
    assert {"protocol", "remote_addr"} <= set(dir(pair)) | set(
        inspect.signature(pair.__init__).parameters
    )


def test_sender_and_transceiver_internals():
    sender = inspect.getsource(RTCRtpSender.__init__)
    assert "self._ssrc = random32()" in sender
    assert "self._rtx_ssrc = random32()" in sender
    transceiver = inspect.getsource(RTCRtpTransceiver.__init__)
    assert "self._codecs: list[RTCRtpCodecParameters] = []" in transceiver
    # what forget_header_extensions empties: aiortc's offers reset it, its RTP
    # receivers and senders take their extension ids from it when they start
    assert "self._headerExtensions: list[RTCRtpHeaderExtensionParameters] = []" in (
        transceiver
    )
    # a sender's track is awaited in _next_encoded_frame (ForwardedTrack never yields)
    assert "await self.__track.recv()" in inspect.getsource(RTCRtpSender)


def test_rtcp_loop_internals_for_quiet_rtcp():
    """quiet_rtcp replaces the loop that send()/receive() start, and marks it
    started and exited as stop() expects."""
    for endpoint in (RTCRtpSender, RTCRtpReceiver):
        source = inspect.getsource(endpoint)
        assert "self.__rtcp_task = asyncio.ensure_future(self._run_rtcp())" in source
        assert "self.__rtcp_started.wait()" in source
        assert "self.__rtcp_exited.wait()" in source
        init = inspect.getsource(endpoint.__init__)
        assert "self.__rtcp_started = asyncio.Event()" in init
        assert "self.__rtcp_exited = asyncio.Event()" in init


def test_rtcp_demultiplexing_covers_aiortcs():
    """Whatever aiortc treats as RTCP we do too (we also take RFC 5761's 209-223)."""
    for second_byte in range(256):
        packet = bytes([0x80, second_byte])
        if aiortc.rtp.is_rtcp(packet):
            assert our_is_rtcp(packet)
        assert our_is_rtcp(packet) == (192 <= second_byte <= 223)


def test_sctp_text_messages_go_through_receive():
    """``transport.drop_undecodable_text`` wraps ``RTCSctpTransport._receive``."""
    from aiortc import RTCSctpTransport
    from aiortc.rtcsctptransport import WEBRTC_STRING

    assert WEBRTC_STRING == 51
    assert "await self._receive(*message)" in inspect.getsource(RTCSctpTransport)
    assert 'emit("message", data.decode("utf8"))' in inspect.getsource(
        RTCSctpTransport._data_channel_receive
    )


def test_pylibsrtp_internals_for_direct_calls():
    """DirectSrtp calls libsrtp with pylibsrtp's own context and buffer."""
    import os

    import pylibsrtp

    from mediaserver.transport import DirectSrtp

    assert version("pylibsrtp").startswith("1.")
    key = os.urandom(30)
    tx = pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND)
    )
    rx = pylibsrtp.Session(
        pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND)
    )
    for attribute in ("_srtp", "_cdata", "_buffer"):
        assert hasattr(tx, attribute)
    packet = bytes([0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0, 7]) + b"payload"
    direct_tx, direct_rx = DirectSrtp(tx), DirectSrtp(rx)
    assert direct_rx.unprotect(direct_tx.protect(packet)) == packet
    assert rx.unprotect(direct_tx.protect(packet[:3] + b"\x02" + packet[4:]))[3] == 2
    try:
        direct_rx.unprotect(direct_tx.protect(packet)[:-1] + b"\x00")
    except pylibsrtp.Error:
        pass
    else:
        raise AssertionError("a bad tag must raise pylibsrtp.Error")
