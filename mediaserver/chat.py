"""Text chat over each participant's ``chat`` data channel, relayed by the room.

Besides chat lines the channel carries two signals: ``typing`` (real-time text,
the line as it is being typed, EN 301 549 §6.2) and ``state`` (microphone and
camera on or off), so the other side sees both without a server round trip of
its own. Signals have their own rate limit and metric.

A client opens one data channel labelled ``chat`` before its first offer (SCTP over
the same DTLS transport as its media). Every valid message from an admitted
participant goes to the other admitted participants, with ``from_role`` and
``participant_id`` set here, never taken from the client. Lobby participants
neither send nor receive. Nothing is kept: a message exists only while it is
relayed, and its text is never logged or counted by content.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from aiortc import RTCDataChannel

from mediaserver.transport import drop_undecodable_text

log = structlog.get_logger()

LABEL = "chat"
#: Longest text, in characters (code points; browsers cut at 2000 UTF-16 units).
MAX_TEXT = 2000
#: Longest raw message: MAX_TEXT escaped as JSON (``\\uXXXX``) plus a little.
MAX_RAW = 6 * MAX_TEXT + 256
#: Per sender: a burst of this many messages, refilled at RATE per second.
BURST = 20
RATE = 5.0
#: Per sender, for typing and state signals: one per keystroke at most, refilled
#: at a fast typist's pace (the client sends at most one per 100 ms).
SIGNAL_BURST = 30
SIGNAL_RATE = 15.0
#: A receiver with this much unsent chat queued gets no more (it is not reading).
MAX_BUFFERED = 1 << 20


class Speaker(Protocol):
    """What chat needs of a participant (:class:`mediaserver.room.Participant`)."""

    @property
    def id(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def admitted(self) -> bool: ...


@dataclass(slots=True)
class ChatStats:
    """Counts of chat messages and of signals by result, for the metrics."""

    messages: dict[str, int] = field(
        default_factory=lambda: {"relayed": 0, "dropped": 0}
    )
    signals: dict[str, int] = field(
        default_factory=lambda: {"relayed": 0, "dropped": 0}
    )

    def count(self, result: str) -> None:
        self.messages[result] = self.messages.get(result, 0) + 1

    def count_signal(self, result: str) -> None:
        self.signals[result] = self.signals.get(result, 0) + 1


def _parse(data: str | bytes) -> dict[str, Any] | None:
    if not isinstance(data, str) or len(data) > MAX_RAW:
        return None
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return message if isinstance(message, dict) else None


def parse_text(data: str | bytes) -> str | None:
    """The ``text`` of a chat message, or None when it is not a valid one."""
    message = _parse(data)
    if message is None or "type" in message:
        return None
    text = message.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return None
    return text


def parse_signal(message: dict[str, Any]) -> dict[str, Any] | None:
    """The fields of a ``typing`` or ``state`` signal to relay, or None."""
    kind = message.get("type")
    if kind == "typing":
        text = message.get("text")
        if isinstance(text, str) and len(text) <= MAX_TEXT:
            return {"type": kind, "text": text}
    if kind == "state":
        muted, camera = message.get("muted"), message.get("camera")
        if isinstance(muted, bool) and isinstance(camera, bool):
            return {"type": kind, "muted": muted, "camera": camera}
    return None


@dataclass(slots=True)
class _Bucket:
    """A token bucket: a burst of ``size``, refilled at ``rate`` per second."""

    size: float
    rate: float
    tokens: float = 0.0
    refilled_at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self.size

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.size, self.tokens + (now - self.refilled_at) * self.rate)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass(slots=True)
class _Member:
    speaker: Speaker
    channel: RTCDataChannel
    lines: _Bucket = field(default_factory=lambda: _Bucket(BURST, RATE))
    signals: _Bucket = field(default_factory=lambda: _Bucket(SIGNAL_BURST, SIGNAL_RATE))


class Chat:
    """One room's chat: the participants' ``chat`` channels and the relay."""

    def __init__(self, stats: ChatStats) -> None:
        self.stats = stats
        self._members: dict[str, _Member] = {}

    def open(self, speaker: Speaker, channel: RTCDataChannel) -> None:
        """A data channel the participant opened; only ``chat`` is used."""
        drop_undecodable_text(channel.transport, lambda: self.stats.count("dropped"))
        if channel.label != LABEL:
            channel.close()
            return
        member = _Member(speaker, channel)
        self._members[speaker.id] = member
        channel.on("message", lambda data: self._on_message(member, data))
        channel.on("close", lambda: self._forget(member))

    def remove(self, speaker: Speaker) -> None:
        """The participant left (or was replaced): their channel is dropped."""
        member = self._members.get(speaker.id)
        if member is not None and member.speaker is speaker:
            del self._members[speaker.id]

    def _forget(self, member: _Member) -> None:
        if self._members.get(member.speaker.id) is member:
            del self._members[member.speaker.id]

    def _on_message(self, member: _Member, data: str | bytes) -> None:
        # an aiortc event handler: an exception here would end the sender's call
        try:
            self._relay(member, data)
        except Exception:
            log.exception("chat_relay_failed", participant_id=member.speaker.id)

    def _relay(self, member: _Member, data: str | bytes) -> None:
        message = _parse(data)
        if message is not None and "type" in message:
            self._relay_signal(member, message)
            return
        text = parse_text(data)
        if not self._current(member) or text is None or not member.lines.take():
            self.stats.count("dropped")
            return
        self._send_others(member, {"text": text})
        self.stats.count("relayed")

    def _relay_signal(self, member: _Member, message: dict[str, Any]) -> None:
        signal = parse_signal(message)
        if signal is None or not self._current(member) or not member.signals.take():
            self.stats.count_signal("dropped")
            return
        self._send_others(member, signal)
        self.stats.count_signal("relayed")

    def _current(self, member: _Member) -> bool:
        """The sender's live channel, and the sender admitted (not in the lobby)."""
        speaker = member.speaker
        return self._members.get(speaker.id) is member and speaker.admitted

    def _send_others(self, member: _Member, fields: dict[str, Any]) -> None:
        speaker = member.speaker
        relayed = json.dumps(
            {**fields, "from_role": speaker.role, "participant_id": speaker.id}
        )
        for other in list(self._members.values()):
            channel = other.channel
            if (
                other is member
                or not other.speaker.admitted
                or channel.readyState != "open"
                or channel.bufferedAmount > MAX_BUFFERED
            ):
                continue
            channel.send(relayed)
