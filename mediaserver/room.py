"""Rooms, participants, roles and the lobby; who receives whose media.

A participant publishes with its first offer; the server then adds (and later
drops) one sending m-line per stream of every other admitted participant and
renegotiates, one offer at a time. A citizen waits in the lobby: nothing of theirs
is forwarded, and they receive nothing, until an agent admits them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NewType

import structlog
from aiortc import RTCRtpTransceiver

from mediaserver.chat import Chat, ChatStats
from mediaserver.errors import (
    BadMessage,
    Draining,
    Forbidden,
    ParticipantNotFound,
    RoomClosed,
    RoomExists,
    RoomFull,
    RoomNotFound,
)
from mediaserver.forwarder import ForwarderStats
from mediaserver.leg import OutboundLeg
from mediaserver.peer import VIDEO_CODECS, Peer, leg_info
from mediaserver.stream import InboundStream
from mediaserver.udp_mux import UdpMux

log = structlog.get_logger()

RoomId = NewType("RoomId", str)
ParticipantId = NewType("ParticipantId", str)
Send = Callable[[dict[str, Any]], Awaitable[None]]

ANSWER_TIMEOUT = 15.0
#: aiortc's close normally takes milliseconds; past this the peer is let go.
PEER_CLOSE_TIMEOUT = 10.0
#: Roles that may admit, remove and end.
MODERATORS = ("agent",)


@dataclass(slots=True)
class Subscription:
    """One stream of another participant sent to this one."""

    publisher_id: ParticipantId
    source: InboundStream
    transceiver: RTCRtpTransceiver
    leg: OutboundLeg | None = None


class Participant:
    """One person in a room: their role, their peer connection, what they receive."""

    def __init__(
        self, participant_id: ParticipantId, role: str, peer: Peer, send: Send
    ) -> None:
        self.id = participant_id
        self.role = role
        self.peer = peer
        self.send = send
        self.admitted = role != "citizen"
        self.streams: list[InboundStream] = []
        self.published = False
        self.subscriptions: dict[tuple[ParticipantId, str], Subscription] = {}
        self._dirty = asyncio.Event()
        self._answer: asyncio.Future[str] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing: asyncio.Future[None] | None = None
        #: Set when negotiation failed; the sweep removes the participant.
        self.failed = False

    @property
    def state(self) -> str:
        return "admitted" if self.admitted else "lobby"

    async def publish(self, offer: str) -> str:
        """Answer the first offer: what this participant sends."""
        if self.published:
            raise BadMessage("only the first offer may come from the client")
        answer, infos = await self.peer.answer(offer)
        self.streams = [self.peer.media.add_stream(info) for info in infos]
        self.peer.media.forwarding = self.admitted
        self.published = True
        self._task = asyncio.create_task(self._negotiate_forever())
        return answer

    def subscribe(self, publisher: Participant) -> None:
        for stream in publisher.streams:
            key = (publisher.id, stream.kind)
            if key not in self.subscriptions:
                transceiver = self.peer.add_sender(stream.kind)
                self.subscriptions[key] = Subscription(
                    publisher.id, stream, transceiver
                )
                self._dirty.set()

    def unsubscribe(self, publisher_id: ParticipantId) -> None:
        for key in [k for k in self.subscriptions if k[0] == publisher_id]:
            subscription = self.subscriptions.pop(key)
            subscription.transceiver.direction = "inactive"
            if subscription.leg is not None:
                self.peer.media.remove_leg(subscription.leg)
            self._dirty.set()

    def on_answer(self, sdp: str) -> None:
        if self._answer is None or self._answer.done():
            raise BadMessage("no offer is waiting for an answer")
        self.peer.check_answer(sdp)
        self._answer.set_result(sdp)

    async def _negotiate_forever(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            try:
                await self._negotiate()
            except TimeoutError:
                log.warning("renegotiation_timed_out", participant_id=self.id)
                self.failed = True
                return
            except ConnectionError:
                # the socket is closing: a normal end, and its handler's leave
                # closes this participant
                log.info("renegotiation_stopped", participant_id=self.id)
                return
            except Exception:
                if self.peer.pc.signalingState != "closed":
                    log.exception("renegotiation_failed", participant_id=self.id)
                self.failed = True
                return

    async def _negotiate(self) -> None:
        # send offer (m-lines added while it is out wait for the next one)
        offered = [s for s in self.subscriptions.values() if s.leg is None]
        sdp = await self.peer.offer()
        tracks = [
            {"mid": s.transceiver.mid, "participant_id": s.publisher_id, "kind": k}
            for (_, k), s in self.subscriptions.items()
        ]
        self._answer = asyncio.get_running_loop().create_future()
        await self.send({"type": "offer", "sdp": sdp, "tracks": tracks})
        # apply answer
        answer = await asyncio.wait_for(self._answer, ANSWER_TIMEOUT)
        await self.peer.accept_answer(answer)
        # start legs of newly negotiated senders
        current = set(map(id, self.subscriptions.values()))
        for subscription in offered:
            if id(subscription) in current and subscription.leg is None:
                info = leg_info(subscription.transceiver)
                subscription.leg = self.peer.media.add_leg(subscription.source, info)

    async def close(self) -> None:
        """Safe to call twice at once (a room ending while the socket closes):
        the second call waits for the first instead of closing aiortc again."""
        if self._closing is None:
            self._closing = asyncio.ensure_future(self._close())
        await asyncio.shield(self._closing)

    async def _close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            # wait for it without swallowing a cancellation of this task: a
            # close that outlives its own cancellation (loop shutdown) would call
            # aiortc's close after aiortc's tasks were cancelled, and that waits
            # forever for them to start
            await asyncio.wait([self._task])
        try:
            async with asyncio.timeout(PEER_CLOSE_TIMEOUT):
                await self.peer.close()
        except TimeoutError:
            log.warning("peer_close_timed_out")

    async def notify(self, message: dict[str, Any]) -> None:
        """Send a signalling message; a participant already gone is ignored."""
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.send(message)


class Room:
    """A call: up to ``max_participants`` people, one video codec."""

    def __init__(
        self,
        room_id: RoomId,
        video_codec: str,
        max_participants: int,
        chat_stats: ChatStats | None = None,
    ):
        if video_codec not in VIDEO_CODECS:
            raise BadMessage(
                f"video_codec {video_codec!r} must be one of {VIDEO_CODECS}"
            )
        self.id = room_id
        self.video_codec = video_codec
        self.max_participants = max_participants
        self.participants: dict[ParticipantId, Participant] = {}
        self.ended = False
        self.created_at = time.monotonic()
        self.chat = Chat(chat_stats or ChatStats())

    def add(self, participant: Participant) -> Participant | None:
        """Add a participant; returns one it replaces (same id reconnecting)."""
        if self.ended:
            raise RoomClosed("the room has ended")
        replaced = self.participants.pop(participant.id, None)
        if replaced is not None:
            for other in self.participants.values():
                other.unsubscribe(replaced.id)
        if len(self.participants) >= self.max_participants:
            raise RoomFull("the room is full")
        self.participants[participant.id] = participant
        if replaced is not None:
            self.chat.remove(replaced)
        participant.peer.pc.on(
            "datachannel", lambda channel: self.chat.open(participant, channel)
        )
        log.info("participant_joined", room_id=self.id, participant_id=participant.id)
        return replaced

    def connect(self) -> None:
        """Make every admitted participant receive every other admitted one."""
        ready = [p for p in self.participants.values() if p.admitted and p.published]
        for subscriber in ready:
            for publisher in ready:
                if publisher is not subscriber:
                    subscriber.subscribe(publisher)

    async def leave(self, participant: Participant, reason: str) -> None:
        """Close ``participant``; if it is still the room's (not replaced by a
        newer connection of the same person), nobody receives it any more."""
        participant_id = participant.id
        if self.participants.get(participant_id) is not participant:
            await participant.close()
            return
        del self.participants[participant_id]
        self.chat.remove(participant)
        for other in self.participants.values():
            other.unsubscribe(participant_id)
        await participant.close()
        log.info(
            "participant_left",
            room_id=self.id,
            participant_id=participant_id,
            reason=reason,
        )
        await self.broadcast_roster()

    def moderator(self, participant_id: ParticipantId) -> Participant:
        participant = self.participants.get(participant_id)
        if participant is None or participant.role not in MODERATORS:
            raise Forbidden("only an agent may do that")
        return participant

    async def admit(self, participant_id: ParticipantId) -> None:
        participant = self._get(participant_id)
        if participant.admitted:
            return
        participant.admitted = True
        participant.peer.media.forwarding = True
        log.info("participant_admitted", room_id=self.id, participant_id=participant_id)
        await participant.notify({"type": "admitted"})
        self.connect()
        await self.broadcast_roster()

    async def remove(self, participant_id: ParticipantId) -> None:
        participant = self._get(participant_id)
        await participant.notify({"type": "removed"})
        await self.leave(participant, "removed")

    async def end(self) -> None:
        self.ended = True
        for participant in list(self.participants.values()):
            await participant.notify({"type": "room_ended"})
            await self.leave(participant, "room_ended")
        log.info("room_ended", room_id=self.id)

    def _get(self, participant_id: ParticipantId) -> Participant:
        try:
            return self.participants[participant_id]
        except KeyError:
            raise ParticipantNotFound("no such participant in this room") from None

    def roster(self) -> list[dict[str, str]]:
        return [
            {"participant_id": p.id, "role": p.role, "state": p.state}
            for p in self.participants.values()
        ]

    async def broadcast_roster(self) -> None:
        message = {"type": "participants", "participants": self.roster()}
        for participant in list(self.participants.values()):
            if participant.admitted:
                await participant.notify(message)


class Rooms:
    """All rooms of this worker, and the per-second RTCP and liveness sweep."""

    def __init__(
        self,
        stats: ForwarderStats,
        mux: UdpMux,
        *,
        max_participants: int = 4,
        peer_timeout: float = 30.0,
    ) -> None:
        self.stats = stats
        self.mux = mux
        self.max_participants = max_participants
        self.peer_timeout = peer_timeout
        self.rooms: dict[RoomId, Room] = {}
        self.draining = False
        self.chat_stats = ChatStats()

    def create(self, room_id: RoomId, video_codec: str = "VP8") -> Room:
        if self.draining:
            raise Draining("this media node is draining")
        if room_id in self.rooms:
            raise RoomExists("a room with this id exists")
        room = Room(room_id, video_codec, self.max_participants, self.chat_stats)
        self.rooms[room_id] = room
        log.info("room_created", room_id=room_id, video_codec=video_codec)
        return room

    def get(self, room_id: RoomId) -> Room:
        room = self.rooms.get(room_id)
        if room is None or room.ended:
            raise RoomNotFound("no such room on this media node")
        return room

    async def end(self, room_id: RoomId) -> None:
        room = self.get(room_id)
        del self.rooms[room_id]
        await room.end()

    def new_peer(self, room: Room) -> Peer:
        return Peer(self.stats, self.mux, room.video_codec)

    @property
    def busy(self) -> bool:
        """Whether any call is in progress (a room with someone in it)."""
        return any(room.participants for room in self.rooms.values())

    def participants_by_role(self) -> dict[str, int]:
        counts = {"agent": 0, "citizen": 0, "interpreter": 0}
        for room in self.rooms.values():
            for participant in room.participants.values():
                counts[participant.role] = counts.get(participant.role, 0) + 1
        return counts

    async def sweep(self) -> None:
        """Send receiver reports; remove peers silent for ``peer_timeout``."""
        now = time.monotonic()
        for room in list(self.rooms.values()):
            for participant in list(room.participants.values()):
                media = participant.peer.media
                if participant.failed:
                    await participant.notify({"type": "removed", "reason": "failed"})
                    await room.leave(participant, "negotiation_failed")
                elif not media.transport.started:
                    continue
                elif now - media.last_packet_at > self.peer_timeout:
                    await participant.notify({"type": "removed", "reason": "timeout"})
                    await room.leave(participant, "timeout")
                else:
                    media.send_receiver_report()

    def send_transport_feedback(self) -> None:
        """transport-cc feedback to every participant that numbers its packets,
        and a probe of each downlink we estimate that is due one (whether or
        not the participant publishes)."""
        now = time.monotonic()
        for room in self.rooms.values():
            for participant in room.participants.values():
                media = participant.peer.media
                if not media.transport.started:
                    continue
                if media.transport_cc_id:
                    media.send_transport_feedback()
                if media.downlink is not None:
                    media.probe_if_due(now)

    async def close(self) -> None:
        for room_id in list(self.rooms):
            await self.end(room_id)
