# Types of the C short path (mediaserver/fastpath/).
from collections.abc import Callable
from typing import Any

class PeerCore:
    stats: Any
    streams: dict[int, Any]
    forwarding: bool
    last_packet_at: float
    _timing_count: int
    @property
    def attached(self) -> bool: ...
    def attach(
        self, rx: int, tx: int, owner: object, fd: int, host: str, port: int
    ) -> None: ...
    def detach(self) -> None: ...
    def fast_handle(self, datagram: bytes) -> None: ...
    @property
    def transport_cc_id(self) -> int: ...
    @property
    def abs_send_time_id(self) -> int: ...
    @property
    def sent_transport_cc_id(self) -> int: ...
    def _set_extensions(
        self, transport_cc_id: int, abs_send_time_id: int, sent_transport_cc_id: int = 0
    ) -> None: ...
    def number_packet(self, now: float, size: int) -> bytes: ...
    def sent_packet(self, seq: int) -> tuple[float, int] | None: ...
    def record_transport_cc(self, plain_rtp: bytes, now: float) -> None: ...
    def transport_feedback(self, sender_ssrc: int, media_ssrc: int) -> bytes | None: ...

class StreamCore:
    publisher: Any
    kind: str
    legs: list[Any]
    payload_types: dict[int, str]
    media_ssrc: int
    clock_rate: int
    is_video: bool
    _max_seq: int
    _cycles: int
    _base_seq: int
    _received: int
    _jitter: float
    _transit: float
    _has_transit: bool

class LegCore:
    subscriber: Any
    kind: str
    payload_map: dict[int, int]
    history: list[bytes | None]
    ssrc: int
    ts_offset: int
    seq_offset: int
    _first_seq: int
    started: bool
    packets: int
    octets: int

def init(srtp_protect_address: int, srtp_unprotect_address: int) -> None: ...
def drain(
    fd: int,
    routes: dict[bytes, PeerCore],
    fallback: Callable[[bytes, Any], None],
    on_error: Callable[[BaseException | None], None],
    on_latency: Callable[[float], None],
) -> int: ...
def timer() -> int: ...
def arm(fd: int, microseconds: int) -> None: ...
def expired(fd: int) -> bool: ...
