"""One UDP port for every peer: demultiplexes datagrams to each peer's ICE agent.

aioice binds a fresh random port per connection. :class:`UdpMux` instead owns one
socket; :meth:`UdpMux.adopt` replaces an aioice ``Connection``'s host-candidate
gathering with a virtual ``StunProtocol`` on that socket. An incoming datagram goes
to the peer known for its source address; a datagram from a new address must be a
STUN request whose USERNAME starts with a known local ufrag, and aioice then checks
its MESSAGE-INTEGRITY as usual. Needs ``bundlePolicy=max-bundle`` (aiortc reuses one
ufrag across a connection's transports).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from typing import Any

import structlog
from aioice import stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol

from mediaserver import _fastpath

log = structlog.get_logger()

Address = tuple[str, int]


SOCKET_BUFFER = 8 * 1024 * 1024
#: Datagrams read per wake-up (the Python path; the C path reads up to 256).
DRAIN_BATCH = 64
RECV_SIZE = 4096
# Linux <asm-generic/socket.h>; Python's socket module does not name them
_SO_SNDBUFFORCE = 32
_SO_RCVBUFFORCE = 33
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
#: At most one summary line per this many seconds about failed datagrams.
FAILURE_LOG_INTERVAL = 10.0
#: The time slice the loop's thread asks the kernel for (EEVDF, Linux >= 6.12;
#: the default is a few ms): on a contended core a woken task with a shorter
#: slice runs sooner, so datagrams wait less for the core.
SCHEDULER_SLICE_NS = 100_000
# sched_getattr/sched_setattr, which Python's os module does not offer
_SCHED_SYSCALLS = {"x86_64": (315, 314), "aarch64": (275, 274)}
_SCHED_OTHER = 0


def _ignore(value: float) -> None:
    """Default latency observer."""


def _ignore_drop(reason: str) -> None:
    """Default drop counter."""


class _FailureSummary:
    """Logs datagram failures as one line per interval, never one per datagram:
    anyone can send datagrams, so each must not cost a log line."""

    def __init__(self, interval: float = FAILURE_LOG_INTERVAL) -> None:
        self._interval = interval
        self._next = 0.0
        self._count = 0

    def record(self, reason: str, error: BaseException | None) -> None:
        self._count += 1
        now = time.monotonic()
        if now < self._next:
            return
        log.warning(
            "udp_datagrams_failed",
            count=self._count,
            last_reason=reason,
            last_error=type(error).__name__ if error is not None else None,
        )
        self._count = 0
        self._next = now + self._interval


class _SchedAttr(ctypes.Structure):
    """Linux's struct sched_attr."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("policy", ctypes.c_uint32),
        ("flags", ctypes.c_uint64),
        ("nice", ctypes.c_int32),
        ("priority", ctypes.c_uint32),
        ("runtime", ctypes.c_uint64),
        ("deadline", ctypes.c_uint64),
        ("period", ctypes.c_uint64),
        ("util_min", ctypes.c_uint32),
        ("util_max", ctypes.c_uint32),
    ]


def _sched_attr() -> _SchedAttr | None:
    """The calling thread's scheduling attributes; None where we cannot ask."""
    numbers = _SCHED_SYSCALLS.get(platform.machine())
    if sys.platform != "linux" or numbers is None:
        return None
    attr = _SchedAttr()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(numbers[0], 0, ctypes.byref(attr), ctypes.sizeof(attr), 0):
        return None
    return attr


def scheduler_slice() -> int | None:
    """The calling thread's time slice in ns (None: unknown)."""
    attr = _sched_attr()
    return None if attr is None else int(attr.runtime)


def set_scheduler_slice(nanoseconds: int) -> None:
    """Ask for this time slice for the calling thread, keeping its nice value and
    policy; a kernel without custom slices ignores it, and failing changes
    nothing."""
    attr = _sched_attr()
    if attr is None or attr.policy != _SCHED_OTHER:
        return
    attr.runtime = nanoseconds
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SCHED_SYSCALLS[platform.machine()][1], 0, ctypes.byref(attr), 0):
        log.info("scheduler_slice_refused", errno=ctypes.get_errno())


def _grow_buffers(sock: socket.socket) -> None:
    """Room for bursts while the loop is busy: above net.core.rmem_max when we
    may (root: SO_RCVBUFFORCE), else as much as the sysctl allows."""
    linux = sys.platform == "linux"
    for force, plain in (
        (_SO_RCVBUFFORCE if linux else None, socket.SO_RCVBUF),
        (_SO_SNDBUFFORCE if linux else None, socket.SO_SNDBUF),
    ):
        try:
            if force is None:
                raise PermissionError
            sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)


class _MuxedTransport(asyncio.DatagramTransport):
    """What one peer's StunProtocol sees as its socket: a view of the shared one."""

    def __init__(self, mux: UdpMux, protocol: StunProtocol, ufrag: str) -> None:
        super().__init__()
        self._mux = mux
        self._protocol = protocol
        self._ufrag = ufrag
        self._closed = False

    def sendto(self, data: Any, addr: Any = None) -> None:
        if not self._closed:
            self._mux.sendto(data, addr)

    def route_media(
        self, addr: Address, handle: Callable[[bytes], None] | None
    ) -> None:
        """SRTP/SRTCP from ``addr`` goes straight to ``handle`` (None: stop)."""
        self._mux.route_media(addr, handle)

    def route_fast(self, addr: Address, peer: _fastpath.PeerCore | None) -> None:
        """SRTP/SRTCP from ``addr`` goes to ``peer`` through the C path (None: stop)."""
        self._mux.route_fast(addr, peer)

    def fileno(self) -> int:
        return self._mux.fileno()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "sockname":
            return (self._mux.advertised_address, self._mux.port)
        return default

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._mux.forget(self._ufrag, self._protocol)
            asyncio.get_running_loop().call_soon(self._protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self._closed


class UdpMux:
    """The shared UDP socket and the table of which peer each address belongs to.

    With ``fast`` (the default) the socket is drained by the C path
    (:func:`mediaserver._fastpath.drain`): SRTP from a peer whose transport has
    started goes to it without running Python; everything else comes back to
    :meth:`_dispatch`. Without it, Python reads and dispatches every datagram.
    """

    def __init__(
        self, advertised_address: str, fast: bool = True, batch_window: float = 0.0
    ) -> None:
        self.advertised_address = advertised_address
        self.port = 0
        self.fast = fast
        self._window_us = round(batch_window * 1e6)
        self._timer: int | None = None
        self._by_address: dict[Address, StunProtocol] = {}
        self._by_ufrag: dict[str, StunProtocol] = {}
        self._media: dict[Address, Callable[[bytes], None]] = {}
        self._fast_routes: dict[bytes, _fastpath.PeerCore] = {}
        self._sock: socket.socket | None = None
        self.unknown_datagrams = 0
        #: Observes the SFU-added latency (kernel receive → sent) of sampled
        #: datagrams on the C path; the app wires a histogram in.
        self.on_latency: Callable[[float], None] = _ignore
        #: Counts a datagram dropped on the Python path, by a low-cardinality
        #: reason; the app wires the forwarder's drop counter in.
        self.on_drop: Callable[[str], None] = _ignore_drop
        self._failures = _FailureSummary()
        self._reading = False

    async def bind(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            try:
                sock.bind((host, port))
            except OSError as exc:
                # worded as asyncio words a TCP listener's, so that a start can
                # name the config key (beeldbel.http.listen_failure)
                reason = (exc.strerror or str(exc)).lower()
                raise OSError(
                    exc.errno,
                    "error while attempting to bind on UDP address"
                    f" ({host!r}, {port}): {reason}",
                ) from exc
            _grow_buffers(sock)
            # the kernel's receive time of each datagram, for on_latency
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self.port = sock.getsockname()[1]
        loop = asyncio.get_running_loop()
        loop.add_reader(sock.fileno(), self._on_readable)
        self._reading = True
        set_scheduler_slice(SCHEDULER_SLICE_NS)  # this thread runs the loop
        if self._window_us > 0:
            self._timer = _fastpath.timer()
            loop.add_reader(self._timer, self._on_timer)

    def close(self) -> None:
        loop = asyncio.get_running_loop()
        if self._timer is not None:
            loop.remove_reader(self._timer)
            os.close(self._timer)
            self._timer = None
        if self._sock is not None:
            loop.remove_reader(self._sock.fileno())
            self._reading = False
            self._sock.close()
            self._sock = None

    @property
    def bound(self) -> bool:
        """The UDP port is open: peers can reach this node."""
        return self._sock is not None

    def fileno(self) -> int:
        if self._sock is None:
            raise RuntimeError("the shared UDP socket is closed")
        return self._sock.fileno()

    @property
    def peer_count(self) -> int:
        return len(self._by_ufrag)

    def sendto(self, data: bytes, addr: Address) -> None:
        """Send now; a datagram that finds the socket buffer full is dropped
        (media is never queued: a late packet is worse than a lost one)."""
        if self._sock is None:
            return
        with contextlib.suppress(OSError):
            self._sock.sendto(data, addr)

    def route_media(
        self, addr: Address, handle: Callable[[bytes], None] | None
    ) -> None:
        if handle is None:
            self._media.pop(addr, None)
        else:
            self._media[addr] = handle

    def route_fast(self, addr: Address, peer: _fastpath.PeerCore | None) -> None:
        key = _route_key(addr)
        if peer is None:
            self._fast_routes.pop(key, None)
        else:
            self._fast_routes[key] = peer

    def _on_readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        read = self._drain(sock)
        if self._timer is None:
            return
        # batching: while datagrams keep coming, read again when the window
        # ends instead of waking per datagram; when a read finds nothing, wait
        # on the socket again
        loop = asyncio.get_running_loop()
        if read:
            if self._reading:
                loop.remove_reader(sock.fileno())
                self._reading = False
            _fastpath.arm(self._timer, self._window_us)
        elif not self._reading:
            loop.add_reader(sock.fileno(), self._on_readable)
            self._reading = True

    def _on_timer(self) -> None:
        if self._timer is not None and _fastpath.expired(self._timer):
            self._on_readable()

    def _drain(self, sock: socket.socket) -> int:
        """Read and dispatch what is queued; returns how many datagrams."""
        if self.fast:
            return _fastpath.drain(
                sock.fileno(),
                self._fast_routes,
                self._dispatch,
                self._on_error,
                self.on_latency,
            )
        for read in range(DRAIN_BATCH):
            try:
                data, addr = sock.recvfrom(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return read
            except OSError:  # e.g. ICMP port unreachable reported on the socket
                continue
            self._dispatch(data, addr)
        return DRAIN_BATCH

    def _on_error(self, error: BaseException | None) -> None:
        """A datagram the C path could not handle (it counted it already when it
        knew the peer): summarised, never logged per datagram."""
        self._failures.record("error", error)

    def _dispatch(self, data: bytes, addr: Address) -> None:
        if not data:
            return
        if 127 < data[0] < 192:
            handle = self._media.get(addr)
            if handle is not None:
                handle(data)
                return
        protocol = self._by_address.get(addr)
        if protocol is not None:
            try:
                protocol.datagram_received(data, addr)
            except Exception as exc:  # aioice parses untrusted bytes
                self._drop("malformed_stun", exc)
            return
        match = self._match_new_address(data)
        if match is None:
            self.unknown_datagrams += 1
            return
        protocol, message = match
        protocol.datagram_received(data, addr)
        # remember the address only once the peer proved it knows the password
        password = protocol.receiver.local_password.encode("utf8")
        if message.check_message_integrity(password):
            self._by_address[addr] = protocol

    def _match_new_address(self, data: bytes) -> tuple[StunProtocol, Any] | None:
        """The peer a STUN request from an unknown address names by its ufrag;
        anything else from an unknown address is counted as dropped."""
        if data[0] > 3:  # not STUN (RFC 7983)
            self.on_drop("unknown_source")
            return None
        try:
            message = stun.parse_message(data)
        except Exception as exc:  # ValueError, or struct.error on a short attribute
            self._drop("malformed_stun", exc)
            return None
        username = message.attributes.get("USERNAME")
        protocol = (
            self._by_ufrag.get(username.split(":", 1)[0])
            if message.message_class == stun.Class.REQUEST and isinstance(username, str)
            else None
        )
        if protocol is None:
            self.on_drop("unknown_source")
            return None
        return protocol, message

    def _drop(self, reason: str, error: BaseException) -> None:
        self.on_drop(reason)
        self._failures.record(reason, error)

    def forget(self, ufrag: str, protocol: StunProtocol) -> None:
        if self._by_ufrag.get(ufrag) is protocol:
            del self._by_ufrag[ufrag]
        for addr in [a for a, p in self._by_address.items() if p is protocol]:
            del self._by_address[addr]
            self._media.pop(addr, None)
            self._fast_routes.pop(_route_key(addr), None)

    def adopt(self, connection: Any) -> None:
        """Make an aioice ``Connection`` gather one host candidate: this port."""
        mux = self

        async def get_component_candidates(
            component: int,
            addresses: list[str],
            timeout: int = 5,  # noqa: ASYNC109 (aioice's signature)
        ) -> list[Candidate]:
            protocol = StunProtocol(connection)
            ufrag = connection.local_username
            protocol.connection_made(_MuxedTransport(mux, protocol, ufrag))
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", mux.advertised_address),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=mux.advertised_address,
                port=mux.port,
                type="host",
            )
            connection._protocols.append(protocol)
            mux._by_ufrag[ufrag] = protocol
            return [protocol.local_candidate]

        connection.get_component_candidates = get_component_candidates


def _route_key(addr: Address) -> bytes:
    """How the C path files an address: packed IP, then the port (big-endian)."""
    host = addr[0]
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.inet_pton(family, host) + int(addr[1]).to_bytes(2, "big")
