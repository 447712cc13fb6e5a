"""Errors of the media server; the middleware and signalling map them to replies."""

from __future__ import annotations

from typing import ClassVar


class MediaError(Exception):
    """Base class: ``code`` goes to the client, ``status`` is the HTTP status."""

    code: ClassVar[str] = "media_error"
    status: ClassVar[int] = 500


class BadMessage(MediaError):
    code = "bad_message"
    status = 400


class Unauthorized(MediaError):
    code = "unauthorized"
    status = 401


class Forbidden(MediaError):
    code = "forbidden"
    status = 403


class RoomNotFound(MediaError):
    code = "room_not_found"
    status = 404


class ParticipantNotFound(MediaError):
    code = "participant_not_found"
    status = 404


class RoomExists(MediaError):
    code = "room_exists"
    status = 409


class RoomFull(MediaError):
    code = "room_full"
    status = 409


class RoomClosed(MediaError):
    code = "room_closed"
    status = 410


class Draining(MediaError):
    code = "draining"
    status = 503


class UdpNotBound(MediaError):
    code = "udp_not_bound"
    status = 503
