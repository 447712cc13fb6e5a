"""One participant's RTCPeerConnection: negotiation by aiortc, media by the forwarder.

aiortc answers the participant's offer (what it publishes) and makes the offers
that add or drop what it receives; :mod:`mediaserver.sdp` keeps what the
connection negotiated once (payload types, header extension ids, the ``o=``
line) the same in each of them. Once DTLS is up, :class:`Peer` hands the
transport to :class:`~mediaserver.forwarder.PeerMedia`. Senders carry a
:class:`ForwardedTrack` that never yields a frame: aiortc announces their SSRCs in
SDP, the forwarder sends their packets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import structlog
from aiortc import (
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpCodecCapability,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError
from aiortc.sdp import SessionDescription

from mediaserver.errors import BadMessage
from mediaserver.forwarder import ForwarderStats, PeerMedia
from mediaserver.leg import LegInfo
from mediaserver.sdp import ConnectionSdp, bundle_dtls_role
from mediaserver.stream import StreamInfo
from mediaserver.transport import (
    MediaTransport,
    dtls_transport,
    forget_header_extensions,
    ice_connection,
    negotiated_codecs,
    quiet_rtcp,
    sender_ssrcs,
)
from mediaserver.udp_mux import UdpMux

log = structlog.get_logger()

VIDEO_CODECS = ("VP8", "H264")
H264_PROFILE = "42e01f"


class ForwardedTrack(MediaStreamTrack):
    """A sending transceiver's track: never yields, so aiortc never sends on it."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self._never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def recv(self) -> None:  # type: ignore[override]
        await self._never

    def stop(self) -> None:
        super().stop()
        if not self._never.done():
            self._never.cancel()


def codec_preferences(kind: str, video_codec: str) -> list[RTCRtpCodecCapability]:
    """The one video codec of the room (with RTX), or Opus."""
    codecs = RTCRtpSender.getCapabilities(kind).codecs
    if kind == "audio":
        return [c for c in codecs if c.mimeType.lower() == "audio/opus"]
    return [c for c in codecs if _allowed_video(c.mimeType, c.parameters, video_codec)]


def _allowed_video(
    mime: str, parameters: Mapping[str, object], video_codec: str
) -> bool:
    mime = mime.lower()
    if mime == "video/rtx":
        return True
    if video_codec == "H264":
        return (
            mime == "video/h264"
            and str(parameters.get("profile-level-id", "")).lower() == H264_PROFILE
            and str(parameters.get("packetization-mode", "0")) == "1"
        )
    return mime == "video/vp8"


class Peer:
    """The server end of one participant's peer connection."""

    def __init__(
        self,
        stats: ForwarderStats,
        mux: UdpMux,
        video_codec: str,
    ) -> None:
        if video_codec not in VIDEO_CODECS:
            raise ValueError(
                f"video_codec {video_codec!r} must be one of {VIDEO_CODECS}"
            )
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.media = PeerMedia(MediaTransport(), stats)
        self.video_codec = video_codec
        #: payload types, header extension ids and o= line, fixed once negotiated
        self.sdp = ConnectionSdp()
        self._mux = mux
        self.connected = asyncio.Event()
        self.pc.on("connectionstatechange", self._on_connection_state)

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected" and not self.media.transport.started:
            self.media.transport.start(
                dtls_transport(self.pc), self.media.handle_datagram, self.media
            )
            self.media.on_transport_started()
            self.connected.set()

    async def answer(self, offer: str) -> tuple[str, list[StreamInfo]]:
        """Answer the participant's offer; returns our SDP and what it publishes.
        An offer without audio or video is refused before aiortc sees it."""
        description = _parse_sdp(offer)
        if not any(m.kind in ("audio", "video") for m in description.media):
            raise BadMessage("the offer has no audio or video")
        await _set_remote(self.pc, RTCSessionDescription(offer, "offer"))
        forget_header_extensions(self.pc)
        for transceiver in self.pc.getTransceivers():
            quiet_rtcp(transceiver)
        self.sdp.learn_offer(description)
        self._mux.adopt(ice_connection(dtls_transport(self.pc)))
        for transceiver in self.pc.getTransceivers():
            codecs = negotiated_codecs(transceiver)
            kept = [c for c in codecs if self._keeps(transceiver.kind, c)]
            kept_pts = {c.payloadType for c in kept}
            codecs[:] = [
                c
                for c in kept
                if c.mimeType.lower() != "video/rtx"
                or c.parameters.get("apt") in kept_pts
            ]
            if transceiver.direction == "sendrecv":
                transceiver.direction = "recvonly"
            # and our re-offers keep to the room's codecs too
            transceiver.setCodecPreferences(
                codec_preferences(transceiver.kind, self.video_codec)
            )
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(
            RTCSessionDescription(self.sdp.local_answer(answer.sdp), "answer")
        )
        self._on_negotiated(self.pc.localDescription.sdp)
        return self.pc.localDescription.sdp, self._published_streams(description)

    def _keeps(self, kind: str, codec: object) -> bool:
        mime = str(getattr(codec, "mimeType", "")).lower()
        if kind == "audio":
            return mime == "audio/opus"
        parameters = getattr(codec, "parameters", {})
        return _allowed_video(mime, parameters, self.video_codec)

    def _published_streams(self, description: SessionDescription) -> list[StreamInfo]:
        streams = []
        for media in description.media:
            if media.kind not in ("audio", "video") or not media.ssrc:
                continue
            if media.direction not in ("sendrecv", "sendonly"):
                continue
            transceiver = self._transceiver(media.rtp.muxId)
            if transceiver is None:
                continue
            streams.append(_stream_info(media, negotiated_codecs(transceiver)))
        return streams

    def _transceiver(self, mid: str | None) -> RTCRtpTransceiver | None:
        for transceiver in self.pc.getTransceivers():
            if transceiver.mid == mid:
                return transceiver
        return None

    def add_sender(self, kind: str) -> RTCRtpTransceiver:
        """A new sendonly m-line, negotiated at the next :meth:`offer`."""
        transceiver = self.pc.addTransceiver(ForwardedTrack(kind), direction="sendonly")
        quiet_rtcp(transceiver)
        transceiver.setCodecPreferences(codec_preferences(kind, self.video_codec))
        return transceiver

    async def offer(self) -> str:
        offer = await self.pc.createOffer()
        forget_header_extensions(self.pc)
        await self.pc.setLocalDescription(
            RTCSessionDescription(self.sdp.local_offer(offer.sdp), "offer")
        )
        return self.pc.localDescription.sdp

    def check_answer(self, answer: str) -> None:
        """Refuse an answer that cannot be the answer to our outstanding offer."""
        ours = _parse_sdp(self.pc.localDescription.sdp).media
        if len(_parse_sdp(answer).media) != len(ours):
            raise BadMessage("the answer does not match the offer")

    async def accept_answer(self, answer: str) -> None:
        answer = bundle_dtls_role(answer)
        await _set_remote(self.pc, RTCSessionDescription(answer, "answer"))
        forget_header_extensions(self.pc)
        self._on_negotiated(answer)

    def _on_negotiated(self, answer: str) -> None:
        """Tell the media path which header extension ids the answer took."""
        ids = self.sdp.negotiated(answer)
        self.media.set_header_extensions(
            transport_cc=ids.transport_cc,
            abs_send_time=ids.abs_send_time,
            sent_transport_cc=ids.sent_transport_cc,
        )

    async def close(self) -> None:
        self.media.close()
        await self.pc.close()


def _parse_sdp(sdp: str) -> SessionDescription:
    try:
        return SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises whatever the text trips
        raise BadMessage("the SDP does not parse") from exc


async def _set_remote(
    pc: RTCPeerConnection, description: RTCSessionDescription
) -> None:
    """``setRemoteDescription``; SDP that aiortc refuses is the client's fault."""
    try:
        await pc.setRemoteDescription(description)
    except (ValueError, InvalidAccessError, InvalidStateError) as exc:
        raise BadMessage(f"the {description.type} was refused: {exc}") from exc


def leg_info(transceiver: RTCRtpTransceiver) -> LegInfo:
    """SSRCs and payload types of a negotiated sending transceiver."""
    ssrc, rtx_ssrc = sender_ssrcs(transceiver)
    payload_types: dict[str, int] = {}
    rtx: dict[int, int] = {}
    for codec in negotiated_codecs(transceiver):
        mime = codec.mimeType.lower()
        if mime.endswith("/rtx"):
            rtx[int(codec.parameters["apt"])] = codec.payloadType
        else:
            payload_types.setdefault(mime, codec.payloadType)
    return LegInfo(ssrc, rtx_ssrc, payload_types, rtx)


def _stream_info(media: object, codecs: list[object]) -> StreamInfo:
    ssrcs = [s.ssrc for s in getattr(media, "ssrc", [])]
    rtx_ssrc = None
    primary = ssrcs[0]
    for group in getattr(media, "ssrc_group", []):
        if group.semantic == "FID" and len(group.items) == 2:
            primary, rtx_ssrc = int(group.items[0]), int(group.items[1])
    payload_types, rtx = _payload_types(codecs)
    first = next((c for c in codecs if not _is_rtx(c)), None)
    return StreamInfo(
        kind=str(getattr(media, "kind", "")),
        ssrc=primary,
        rtx_ssrc=rtx_ssrc,
        payload_types=payload_types,
        rtx_payload_types=rtx,
        clock_rate=int(getattr(first, "clockRate", 90000)),
    )


def _is_rtx(codec: object) -> bool:
    return str(getattr(codec, "mimeType", "")).lower().endswith("/rtx")


def _payload_types(codecs: list[object]) -> tuple[dict[int, str], dict[int, int]]:
    """``({pt: mime}, {rtx pt: apt})`` of negotiated codecs."""
    payload_types: dict[int, str] = {}
    rtx: dict[int, int] = {}
    for codec in codecs:
        pt = int(getattr(codec, "payloadType", 0))
        if _is_rtx(codec):
            rtx[pt] = int(getattr(codec, "parameters", {})["apt"])
        else:
            payload_types[pt] = str(getattr(codec, "mimeType", "")).lower()
    return payload_types, rtx
