"""Text chat over each participant's ``chat`` data channel, relayed by the room.

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
from typing import Protocol

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
    """Counts of chat messages by result; the metrics collector reads them."""

    messages: dict[str, int] = field(
        default_factory=lambda: {"relayed": 0, "dropped": 0}
    )

    def count(self, result: str) -> None:
        self.messages[result] = self.messages.get(result, 0) + 1


def parse_text(data: str | bytes) -> str | None:
    """The ``text`` of a chat message, or None when it is not a valid one."""
    if not isinstance(data, str) or len(data) > MAX_RAW:
        return None
    try:
        message = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(message, dict):
        return None
    text = message.get("text")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TEXT:
        return None
    return text


@dataclass(slots=True)
class _Member:
    speaker: Speaker
    channel: RTCDataChannel
    tokens: float = BURST
    refilled_at: float = field(default_factory=time.monotonic)

    def take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(BURST, self.tokens + (now - self.refilled_at) * RATE)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


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
        speaker = member.speaker
        text = parse_text(data)
        if (
            self._members.get(speaker.id) is not member
            or not speaker.admitted
            or text is None
            or not member.take_token()
        ):
            self.stats.count("dropped")
            return
        relayed = json.dumps(
            {"text": text, "from_role": speaker.role, "participant_id": speaker.id}
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
        self.stats.count("relayed")
