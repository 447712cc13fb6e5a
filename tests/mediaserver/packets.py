"""RTP bytes for tests, and sending them into a call as a participant would."""

from __future__ import annotations

import struct

import pylibsrtp

from tests.mediaserver.client import MediaClient


def rtp_packet(
    seq: int = 1,
    ts: int = 1000,
    ssrc: int = 0x1234,
    pt: int = 96,
    payload: bytes = b"abc",
    ext: bytes = b"",
    pad: int = 0,
) -> bytes:
    """One RTP packet; ``ext`` is one-byte-header extension data (a multiple of 4
    bytes), ``pad`` the number of padding bytes."""
    first = 0x80 | (0x10 if ext else 0) | (0x20 if pad else 0)
    header = struct.pack("!BBHII", first, 0x80 | pt, seq, ts, ssrc)
    if ext:
        header += struct.pack("!HH", 0xBEDE, len(ext) // 4) + ext
    padding = b"\x00" * (pad - 1) + bytes([pad]) if pad else b""
    return header + payload + padding


async def send_authenticated(client: MediaClient, packet: bytes, rtcp: bool) -> None:
    """Protect ``packet`` with the client's own SRTP keys and send it to the SFU.

    libsrtp refuses to protect some malformed RTP headers; those go out with a
    zero authentication tag instead (the SFU must drop them just the same)."""
    dtls = client.pc.getTransceivers()[0].sender.transport
    session = dtls._tx_srtp
    try:
        data = session.protect_rtcp(packet) if rtcp else session.protect(packet)
    except pylibsrtp.Error:
        data = packet + bytes(10)
    await dtls.transport._send(data)
