"""The participant's WebSocket: one JSON envelope ``{"type": ...}`` per message.

The protocol is documented in ``docs/protocol.md``. The first message must be
``join`` with a join token; then the client sends its one offer, answers the
server's offers, and an agent may ``admit``, ``remove`` and ``end``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from beeldbel.config import MediaServerConfig
from beeldbel.tokens import TokenError, TokenVerifier
from mediaserver.errors import BadMessage, Forbidden, MediaError
from mediaserver.ice_servers import ice_servers_for
from mediaserver.room import Participant, ParticipantId, Room, RoomId, Rooms

log = structlog.get_logger()

JOIN_TIMEOUT = 10.0
#: Tasks started from aiortc event handlers; referenced until done.
_background: set[asyncio.Task[None]] = set()
MAX_MESSAGE = 64 * 1024
#: Deepest nesting of arrays and objects a message may have (the protocol uses 3).
MAX_DEPTH = 16


@dataclass(frozen=True, slots=True)
class Signalling:
    """What the WebSocket handler needs; built once by the app."""

    config: MediaServerConfig
    rooms: Rooms
    verifier: TokenVerifier

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=15, max_msg_size=MAX_MESSAGE)
        await ws.prepare(request)
        try:
            room, participant = await self._join(ws)
        except (MediaError, TokenError) as exc:
            await _send_error(ws, exc)
            await ws.close()
            return ws
        with structlog.contextvars.bound_contextvars(
            room_id=room.id, participant_id=participant.id
        ):
            try:
                await self._serve(ws, room, participant)
            finally:
                await room.leave(participant, "disconnected")
        return ws

    async def _join(self, ws: web.WebSocketResponse) -> tuple[Room, Participant]:
        try:
            async with asyncio.timeout(JOIN_TIMEOUT):
                message = await _receive(ws)
        except TimeoutError:
            raise BadMessage("no join message in time") from None
        if message is None or message.get("type") != "join":
            raise BadMessage("the first message must be join")
        token = _field(message, "token")
        room_id = RoomId(_field(message, "room_id"))
        claims = await self.verifier.verify(token)
        if claims.room != room_id:
            raise Forbidden("the token is for another room")
        room = self.rooms.get(room_id)
        participant_id = ParticipantId(claims.sub)
        peer = self.rooms.new_peer(room)
        participant = Participant(participant_id, claims.role, peer, ws.send_json)
        replaced = room.add(participant)
        peer.pc.on("connectionstatechange", self._on_state(room, participant))
        if replaced is not None:
            await replaced.notify({"type": "removed", "reason": "replaced"})
            await replaced.close()
        await ws.send_json(
            {
                "type": "joined",
                "participant_id": participant.id,
                "role": participant.role,
                "state": participant.state,
                "video_codec": room.video_codec,
                "ice_servers": ice_servers_for(self.config, participant.id),
            }
        )
        if participant.admitted:
            await room.broadcast_roster()
        else:
            for other in room.participants.values():
                if other.role == "agent":
                    await other.notify(
                        {"type": "participants", "participants": room.roster()}
                    )
        return room, participant

    def _on_state(self, room: Room, participant: Participant) -> Any:
        def on_state() -> None:
            if participant.peer.pc.connectionState == "failed":
                task = asyncio.create_task(room.leave(participant, "ice_failed"))
                _background.add(task)
                task.add_done_callback(_background.discard)

        return on_state

    async def _serve(
        self, ws: web.WebSocketResponse, room: Room, participant: Participant
    ) -> None:
        while not ws.closed:
            message = await _receive(ws)
            if message is None:
                return
            try:
                if await self._dispatch(message, room, participant):
                    return
            except MediaError as exc:
                await _send_error(ws, exc)
            except Exception as exc:  # a handler's failure ends no session
                log.warning(
                    "signalling_message_failed",
                    message_type=str(message.get("type"))[:32],
                    error=type(exc).__name__,
                )
                await _send_error(ws, BadMessage("the message could not be handled"))

    async def _dispatch(
        self, message: dict[str, Any], room: Room, participant: Participant
    ) -> bool:
        """Handle one message; True when the participant leaves."""
        kind = message.get("type")
        if kind == "offer":
            answer = await participant.publish(_field(message, "sdp"))
            await participant.send({"type": "answer", "sdp": answer})
            room.connect()
        elif kind == "answer":
            participant.on_answer(_field(message, "sdp"))
        elif kind == "candidate":
            pass  # the server learns the client's address from its ICE checks
        elif kind == "admit":
            room.moderator(participant.id)
            await room.admit(ParticipantId(_field(message, "participant_id")))
        elif kind == "remove":
            room.moderator(participant.id)
            await room.remove(ParticipantId(_field(message, "participant_id")))
        elif kind == "end":
            room.moderator(participant.id)
            with contextlib.suppress(MediaError):
                await self.rooms.end(room.id)
            return True
        elif kind == "leave":
            return True
        else:
            raise BadMessage(f"unknown message type {kind!r}")
        return False


async def _receive(ws: web.WebSocketResponse) -> dict[str, Any] | None:
    """The next JSON object, or None when the socket closed. Nesting deeper than
    ``MAX_DEPTH`` gets an error and closes the socket (1009, too big to process);
    aiohttp closes it with 1009 above ``MAX_MESSAGE``."""
    while True:
        msg = await ws.receive()
        if msg.type != WSMsgType.TEXT:
            return None
        try:
            message = _parse(msg.data)
        except json.JSONDecodeError:
            await _send_error(ws, BadMessage("message is not JSON"))
            continue
        except _TooDeep:
            await _send_error(ws, BadMessage(f"message nested over {MAX_DEPTH} deep"))
            await ws.close(code=WSCloseCode.MESSAGE_TOO_BIG)
            return None
        if isinstance(message, dict):
            return message
        await _send_error(ws, BadMessage("message is not a JSON object"))


class _TooDeep(Exception):
    pass


def _parse(text: str) -> Any:
    """JSON with at most ``MAX_DEPTH`` levels of nesting (raises ``_TooDeep``)."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise _TooDeep from None
    level = [value]
    for _ in range(MAX_DEPTH):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return value
    raise _TooDeep


def _field(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value:
        raise BadMessage(f"{message.get('type')} needs a string {name!r}")
    return value


async def _send_error(ws: web.WebSocketResponse, exc: Exception) -> None:
    code = getattr(exc, "code", "error")
    log.info("signalling_refused", code=code)
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_json({"type": "error", "code": code, "message": str(exc)})
