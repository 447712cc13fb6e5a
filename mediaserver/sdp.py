"""The SFU's SDP on one connection: what is negotiated once keeps its meaning.

aiortc writes every offer from scratch: payload types from its own table (Opus
96, VP8 97 …, while Chrome chose Opus 111, VP8 96), every header extension it
knows, and a new ``o=`` line. :class:`ConnectionSdp` rewrites our answer and each
of our offers so that on one connection (one BUNDLE group)

- a payload type, once used, means the same codec in every m-section of every
  later description (RFC 3264 §8.3.2, RFC 8843); new codecs get a payload
  type no description of the connection used yet;
- the ``o=`` line keeps its session id and its version goes up by one with each
  description we send (RFC 3264 §8);
- one RTP header extension is negotiated each way, with ids fixed for the
  connection: transport-cc on what the participant publishes (only when its offer
  had it, with its id); on what the SFU sends, transport-cc too when the offer
  had it (feedback for the SFU's own estimate of the participant's downlink,
  ``estimator.py``), else abs-send-time and REMB (the participant's id for it,
  or one no other extension of the connection uses);
- Opus asks for in-band FEC.

:func:`bundle_dtls_role` reads a remote answer's DTLS role from the BUNDLE tag's
m-section only (RFC 8843: transport attributes of the other bundled
m-sections carry no meaning).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from aiortc import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters
from aiortc.rtcrtpparameters import RTCRtcpFeedback
from aiortc.sdp import MediaDescription, SessionDescription

TRANSPORT_CC = (
    "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
)
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
#: The id abs-send-time gets when the participant did not offer it (Chrome's).
DEFAULT_ABS_SEND_TIME_ID = 2
#: One-byte header extension ids (RFC 8285 §4.2).
EXTENSION_IDS = range(1, 15)
DYNAMIC_PAYLOAD_TYPES = range(96, 128)
RTP_KINDS = ("audio", "video")

#: A codec's identity, whatever its payload type: MIME type, clock rate,
#: channels and, for H264, profile and packetization mode; RTX adds its codec's.
CodecKey = tuple[object, ...]


@dataclass(frozen=True, slots=True)
class HeaderExtensionIds:
    """Ids of the extensions on one connection; 0 when not negotiated."""

    #: on the RTP the participant publishes
    transport_cc: int = 0
    #: on the RTP the SFU sends to the participant: one of the two
    abs_send_time: int = 0
    sent_transport_cc: int = 0


class PayloadTypes:
    """Codec ↔ payload type on one connection; an entry never changes."""

    def __init__(self) -> None:
        self._by_codec: dict[CodecKey, int] = {}
        self._used: set[int] = set()

    def learn(self, media: MediaDescription) -> None:
        """Keep the payload types of the participant's offer, including those of
        codecs we do not take, so that none is ever used for another codec."""
        keys = _codec_keys(media.rtp.codecs)
        for codec in media.rtp.codecs:
            pt = _pt(codec)
            self._used.add(pt)
            self._by_codec.setdefault(keys[pt], pt)

    def renumber(self, media: MediaDescription) -> None:
        """Give ``media``'s codecs (aiortc's numbering) the connection's types."""
        keys = _codec_keys(media.rtp.codecs)
        new = {pt: self._payload_type(key, pt) for pt, key in keys.items()}
        for codec in media.rtp.codecs:
            codec.payloadType = new[_pt(codec)]
            apt = codec.parameters.get("apt")
            if _is_rtx(codec) and isinstance(apt, int):
                codec.parameters["apt"] = new.get(apt, apt)
        media.fmt = [new.get(pt, pt) for pt in media.fmt]

    def _payload_type(self, key: CodecKey, wanted: int) -> int:
        pt = self._by_codec.get(key)
        if pt is None:
            if wanted in self._used:
                free = [p for p in DYNAMIC_PAYLOAD_TYPES if p not in self._used]
                if not free:
                    raise RuntimeError("no payload type left on this connection")
                wanted = free[0]
            pt = self._by_codec[key] = wanted
            self._used.add(pt)
        return pt


class Origin:
    """The ``o=`` line of our descriptions: one session id, version + 1 each."""

    def __init__(self) -> None:
        # JSEP §5.2.1: a 64-bit random number with the high bit cleared
        self.session_id = secrets.randbits(62)
        self.version = 0

    def next_line(self) -> str:
        line = f"- {self.session_id} {self.version} IN IP4 0.0.0.0"
        self.version += 1
        return line


class ConnectionSdp:
    """What one participant's connection negotiated once, applied to each of our
    descriptions. :meth:`learn_offer` takes the participant's only offer."""

    def __init__(self) -> None:
        self.payload_types = PayloadTypes()
        self.origin = Origin()
        self.ids = HeaderExtensionIds()
        #: the participant's own m-sections (what it publishes), by mid
        self._published: set[str] = set()
        #: …of those, the ones whose offer had transport-cc
        self._transport_cc_mids: set[str] = set()
        #: payload types the offer asked transport-cc feedback for
        self._transport_cc_pts: set[int] = set()

    def learn_offer(self, offer: SessionDescription) -> None:
        ids: dict[str, int] = {}
        used: set[int] = set()
        for media in _rtp_media(offer):
            mid = str(media.rtp.muxId)
            self._published.add(mid)
            self.payload_types.learn(media)
            for extension in media.rtp.headerExtensions:
                ids.setdefault(extension.uri, extension.id)
                used.add(extension.id)
                if extension.uri == TRANSPORT_CC:
                    self._transport_cc_mids.add(mid)
                    self._transport_cc_pts.update(_pts_with_feedback(media))
        transport_cc = ids.get(TRANSPORT_CC, 0)
        # what we send carries one-byte headers: ids 1-14 (RFC 8285 §4.2)
        sent_transport_cc = transport_cc if transport_cc in EXTENSION_IDS else 0
        self.ids = HeaderExtensionIds(
            transport_cc=transport_cc,
            abs_send_time=0
            if sent_transport_cc
            else ids.get(ABS_SEND_TIME) or _free_id(used),
            sent_transport_cc=sent_transport_cc,
        )

    def local_answer(self, sdp: str) -> str:
        """Our answer to the participant's offer (aiortc's, with its types)."""
        return self._rewrite(sdp, renumber=False)

    def local_offer(self, sdp: str) -> str:
        """One of our offers (aiortc's, with aiortc's payload types)."""
        return self._rewrite(sdp, renumber=True)

    def negotiated(self, answer: str) -> HeaderExtensionIds:
        """The extensions that ``answer`` (ours or the participant's) took."""
        transport_cc = abs_send_time = sent_transport_cc = 0
        for media in _rtp_media(SessionDescription.parse(answer)):
            taken = {(e.uri, e.id) for e in media.rtp.headerExtensions}
            if media.rtp.muxId in self._published:
                if (TRANSPORT_CC, self.ids.transport_cc) in taken:
                    transport_cc = self.ids.transport_cc
            elif (ABS_SEND_TIME, self.ids.abs_send_time) in taken:
                abs_send_time = self.ids.abs_send_time
            elif (TRANSPORT_CC, self.ids.sent_transport_cc) in taken:
                sent_transport_cc = self.ids.sent_transport_cc
        return HeaderExtensionIds(transport_cc, abs_send_time, sent_transport_cc)

    def _rewrite(self, sdp: str, *, renumber: bool) -> str:
        description = SessionDescription.parse(sdp)
        description.origin = self.origin.next_line()
        for media in _rtp_media(description):
            if renumber:
                self.payload_types.renumber(media)
            if media.rtp.muxId in self._published:
                self._publishing(media)
            else:
                self._sending(media)
            _ask_for_opus_fec(media)
        return str(description)

    def _publishing(self, media: MediaDescription) -> None:
        """What the participant sends: transport-cc, so that it sends transport-
        wide sequence numbers and takes the SFU's feedback for its estimate."""
        media.rtp.headerExtensions = []
        if media.rtp.muxId not in self._transport_cc_mids:
            return
        media.rtp.headerExtensions = [
            RTCRtpHeaderExtensionParameters(id=self.ids.transport_cc, uri=TRANSPORT_CC)
        ]
        for codec in media.rtp.codecs:
            if _pt(codec) in self._transport_cc_pts and not _is_rtx(codec):
                _add_feedback(codec, "transport-cc")

    def _sending(self, media: MediaDescription) -> None:
        """What the SFU sends: transport-cc, so that the participant's browser
        tells us when each packet arrived and we estimate its downlink; without
        it, abs-send-time and REMB, so that the browser estimates it itself."""
        if self.ids.sent_transport_cc:
            ext_id, uri, feedback, other = (
                self.ids.sent_transport_cc,
                TRANSPORT_CC,
                "transport-cc",
                "goog-remb",
            )
        else:
            ext_id, uri, feedback, other = (
                self.ids.abs_send_time,
                ABS_SEND_TIME,
                "goog-remb",
                "transport-cc",
            )
        media.rtp.headerExtensions = (
            [RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri)] if ext_id else []
        )
        for codec in media.rtp.codecs:
            codec.rtcpFeedback = [f for f in codec.rtcpFeedback if f.type != other]
            # REMB is about video only; transport-cc feedback covers all
            if not _is_rtx(codec) and (uri == TRANSPORT_CC or media.kind == "video"):
                _add_feedback(codec, feedback)


_SETUP = re.compile(r"^a=setup:(\S+)$")
_MID = re.compile(r"^a=mid:(\S+)$")
_BUNDLE = re.compile(r"^a=group:BUNDLE((?: \S+)+)$")


def bundle_dtls_role(sdp: str) -> str:
    """``sdp`` with every m-section of its BUNDLE group set to the tag section's
    ``a=setup``. aiortc applies each m-section's role to the one shared DTLS
    transport in turn, so Firefox answering ``active`` for m-sections added to a
    group whose tag says ``passive`` would turn our DTLS client into a server."""
    newline = "\r\n" if "\r\n" in sdp else "\n"
    lines = sdp.split(newline)
    bundle = next((m for line in lines if (m := _BUNDLE.match(line))), None)
    if bundle is None:
        return sdp
    mids = bundle.group(1).split()
    sections = _sections(lines)
    tag = next((s for s in sections if _section_mid(lines, s) == mids[0]), None)
    setup = None if tag is None else _section_setup(lines, tag)
    if setup is None:
        return sdp
    for section in sections:
        if _section_mid(lines, section) in mids:
            for i in section:
                if _SETUP.match(lines[i]):
                    lines[i] = f"a=setup:{setup}"
    return newline.join(lines)


def _sections(lines: list[str]) -> list[range]:
    """The line numbers of each m-section."""
    starts = [i for i, line in enumerate(lines) if line.startswith("m=")]
    return [range(a, b) for a, b in zip(starts, [*starts[1:], len(lines)], strict=True)]


def _section_mid(lines: list[str], section: range) -> str | None:
    return next((m.group(1) for i in section if (m := _MID.match(lines[i]))), None)


def _section_setup(lines: list[str], section: range) -> str | None:
    return next((m.group(1) for i in section if (m := _SETUP.match(lines[i]))), None)


def _rtp_media(description: SessionDescription) -> list[MediaDescription]:
    return [m for m in description.media if m.kind in RTP_KINDS]


def _is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return bool(codec.mimeType.lower().endswith("/rtx"))


def _codec_keys(codecs: list[RTCRtpCodecParameters]) -> dict[int, CodecKey]:
    """Each payload type's codec identity, RTX by the codec it repairs."""
    keys: dict[int, CodecKey] = {}
    for codec in codecs:
        if not _is_rtx(codec):
            keys[_pt(codec)] = _codec_key(codec)
    for codec in codecs:
        if _is_rtx(codec):
            apt = codec.parameters.get("apt")
            repaired = keys.get(apt) if isinstance(apt, int) else None
            keys[_pt(codec)] = ("rtx", codec.clockRate, repaired)
    return keys


def _pt(codec: RTCRtpCodecParameters) -> int:
    """A parsed codec's payload type (SDP always gives one)."""
    if codec.payloadType is None:
        raise ValueError(f"{codec.mimeType} has no payload type")
    return codec.payloadType


def _codec_key(codec: RTCRtpCodecParameters) -> CodecKey:
    mime = codec.mimeType.lower()
    key: CodecKey = (mime, codec.clockRate, codec.channels)
    if mime == "video/h264":
        parameters = codec.parameters
        key += (
            str(parameters.get("profile-level-id", "42e01f")).lower(),
            str(parameters.get("packetization-mode", "0")),
        )
    return key


def _pts_with_feedback(media: MediaDescription) -> set[int]:
    return {
        _pt(c)
        for c in media.rtp.codecs
        if any(f.type == "transport-cc" for f in c.rtcpFeedback)
    }


def _add_feedback(codec: RTCRtpCodecParameters, kind: str) -> None:
    if not any(f.type == kind and not f.parameter for f in codec.rtcpFeedback):
        codec.rtcpFeedback.append(RTCRtcpFeedback(type=kind))


def _free_id(used: Iterable[int]) -> int:
    """abs-send-time's id when the participant did not offer it: Chrome's 2 if
    free, else the lowest free one (0: none left)."""
    taken = set(used)
    if DEFAULT_ABS_SEND_TIME_ID not in taken:
        return DEFAULT_ABS_SEND_TIME_ID
    return next((i for i in EXTENSION_IDS if i not in taken), 0)


def _ask_for_opus_fec(media: MediaDescription) -> None:
    """Opus in-band FEC, and DTX: a silent microphone sends a packet every
    400 ms instead of 50 a second, which leaves a weak uplink to the video
    (aiortc's SDP carries no Opus fmtp; a browser's offer carries its own, which
    says what it wants to receive, not what we do)."""
    for codec in media.rtp.codecs:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters = {"minptime": 10, "useinbandfec": 1, "usedtx": 1}
