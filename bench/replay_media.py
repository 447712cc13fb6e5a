"""The media the replay sender loops: pre-encoded VP8 frames cut into RTP
payloads exactly as aiortc's ``Vp8Encoder`` cuts them (RFC 7741 descriptor with a
15-bit picture ID, same packet size limit), and Opus packets as aiortc sends
pre-encoded ones (one packet per RTP payload, no audio-level extension).

The VP8 descriptor's picture ID changes per frame, so it is written per packet
(``vp8_descriptor``); the rest is cut once per client process.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from aiortc.codecs.vpx import Vp8Encoder

VIDEO_CLOCK = 90000
AUDIO_CLOCK = 48000
#: the four bytes aiortc's descriptor has: X, I (+M: 15-bit picture ID)
VP8_DESCRIPTOR_SIZE = 4

_PICTURE_ID = struct.Struct("!H")


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame's RTP payloads (for VP8 without the descriptor) and whether it
    is a VP8 key frame."""

    chunks: tuple[bytes, ...]
    keyframe: bool


@dataclass(frozen=True, slots=True)
class ReplayMedia:
    """What each replayed publisher loops: ``video`` at ``fps``, ``audio`` every
    20 ms."""

    video: tuple[Frame, ...]
    audio: tuple[Frame, ...]
    fps: int

    @property
    def video_step(self) -> int:
        return VIDEO_CLOCK // self.fps

    @property
    def audio_step(self) -> int:
        return AUDIO_CLOCK // 50


def cut(video: list[bytes], audio: list[bytes], fps: int) -> ReplayMedia:
    """The looped media, cut once: aiortc's VP8 packetizer with picture ID 0, the
    descriptor taken off again (``vp8_descriptor`` writes it per frame)."""
    frames = []
    for data in video:
        payloads = Vp8Encoder._packetize(data, 0)
        assert all(
            p[:VP8_DESCRIPTOR_SIZE] == vp8_descriptor(i == 0, 0)
            for i, p in enumerate(payloads)
        ), "aiortc's VP8 descriptor is not the one replayed"
        chunks = tuple(p[VP8_DESCRIPTOR_SIZE:] for p in payloads)
        # RFC 6386: bit 0 of the first byte is 0 for a key frame
        frames.append(Frame(chunks, keyframe=not data[0] & 0x01))
    sounds = tuple(Frame((packet,), keyframe=False) for packet in audio)
    return ReplayMedia(tuple(frames), sounds, fps)


def vp8_descriptor(start: bool, picture_id: int) -> bytes:
    """aiortc's VP8 payload descriptor: X=1, S for a frame's first packet,
    partition 0; I=1; M=1 and the 15-bit picture ID."""
    return bytes((0x90 if start else 0x80, 0x80)) + _PICTURE_ID.pack(
        0x8000 | picture_id
    )
