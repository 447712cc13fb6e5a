"""Beeldbel configuration: dataclass defaults < TOML file < ``BEELDBEL_*`` variables.

Every section is a frozen dataclass. Unknown sections or keys and values of the
wrong type stop the start with a :class:`ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigError(Exception):
    """The configuration is invalid; the message names the key and the value."""


class Secret:
    """A string that never shows itself in a repr, a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Topic:
    code: str
    nl: str
    en: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]{1,31}", self.code):
            raise ValueError(f"topic code {self.code!r} must be 2-32 of a-z, 0-9, _")

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.nl


DEFAULT_TOPICS = (
    Topic("report_crime", "Aangifte doen", "Report a crime"),
    Topic("report_question", "Vraag over een aangifte", "Question about a report"),
    Topic("other", "Iets anders", "Something else"),
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DEFAULT_OPENING_HOURS: dict[str, str] = {
    "mon": "08:00-20:00",
    "tue": "08:00-20:00",
    "wed": "08:00-20:00",
    "thu": "08:00-20:00",
    "fri": "08:00-20:00",
    "sat": "09:00-17:00",
    "sun": "",
}

_HOURS = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)")


def _at_least(config: object, minimum: int, *names: str) -> None:
    """Each of ``names`` (whole numbers) must be ``minimum`` or more."""
    for name in names:
        value = getattr(config, name)
        if value < minimum:
            raise ValueError(f"{name} {value} must be at least {minimum}")


def _between(config: object, name: str, low: int, high: int) -> None:
    value = getattr(config, name)
    if not low <= value <= high:
        raise ValueError(f"{name} {value} must be {low} to {high}")


def _check_secret(name: str, secret: Secret, minimum: int) -> None:
    """An unset secret ("") is allowed; a set one must be long and not blank.
    The message never shows the secret."""
    value = secret.reveal()
    if value and len(value.strip()) < minimum:
        raise ValueError(
            f"{name} must be at least {minimum} characters besides spaces: "
            "leave it empty or use a random string"
        )


def parse_hours(spec: str) -> tuple[int, int] | None:
    """``"08:00-20:00"`` → minutes since midnight ``(480, 1200)``; ``""`` → closed."""
    if not spec:
        return None
    match = _HOURS.fullmatch(spec)
    if match is None:
        raise ValueError(f"opening hours {spec!r} must look like 08:00-20:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start or end > 24 * 60:
        raise ValueError(f"opening hours {spec!r} must end after they start")
    return start, end


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8443
    #: The address citizens and staff use; links in e-mails are built on it.
    public_url: str = "https://127.0.0.1:8443"
    #: Where the SQLite file, generated secrets and dev certificates live.
    data_dir: str = "var"
    #: Number of proxies in front of us whose X-Forwarded-For we trust.
    trusted_proxies: int = 0
    #: A connection that has not sent a whole request within this many seconds
    #: (when it opens, or idle between requests) is closed: slow clients cannot
    #: hold connections open.
    header_timeout_seconds: int = 15

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not a TCP port")
        if not self.public_url.startswith(("https://", "http://")):
            raise ValueError(f"public_url {self.public_url!r} must be an http(s) URL")
        _between(self, "trusted_proxies", 0, 10)
        _between(self, "header_timeout_seconds", 1, 300)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    #: Serve HTTPS. Only turn off behind a TLS-terminating proxy.
    enabled: bool = True
    cert_file: str = "var/certs/server.crt"
    key_file: str = "var/certs/server.key"


@dataclass(frozen=True, slots=True)
class DatabaseConfig:
    url: str = "sqlite+aiosqlite:///var/beeldbel.sqlite3"

    def __post_init__(self) -> None:
        if not self.url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                f"url {self.url!r} must start with sqlite+aiosqlite:// "
                "or postgresql+asyncpg://"
            )


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    #: "auto" renders JSON unless stderr is a terminal.
    format: str = "auto"

    def __post_init__(self) -> None:
        if self.level not in ("debug", "info", "warning", "error"):
            raise ValueError(f"level {self.level!r} must be debug/info/warning/error")
        if self.format not in ("auto", "json", "console"):
            raise ValueError(f"format {self.format!r} must be auto/json/console")


@dataclass(frozen=True, slots=True)
class DeskConfig:
    name: str = "Politie - Beeldbel"
    timezone: str = "Europe/Amsterdam"
    topics: tuple[Topic, ...] = DEFAULT_TOPICS
    opening_hours: dict[str, str] = field(
        default_factory=lambda: dict(DEFAULT_OPENING_HOURS)
    )
    slot_minutes: int = 30
    booking_days: int = 7
    retry_delay_minutes: int = 15
    max_attempts: int = 3
    #: A request nobody handled this long after it was due becomes expired.
    expire_after_hours: int = 24
    #: A claim untouched this long may be released by a supervisor.
    stale_claim_minutes: int = 30

    def __post_init__(self) -> None:
        if not self.topics:
            raise ValueError("topics must name at least one topic")
        codes = [t.code for t in self.topics]
        if len(set(codes)) != len(codes):
            raise ValueError(f"topics has a duplicate code in {codes}")
        unknown = set(self.opening_hours) - set(WEEKDAYS)
        if unknown:
            raise ValueError(f"opening_hours has unknown days {sorted(unknown)}")
        for spec in self.opening_hours.values():
            parse_hours(spec)
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone {self.timezone!r} is not a known time zone "
                "(such as Europe/Amsterdam)"
            ) from None
        _at_least(
            self,
            1,
            "slot_minutes",
            "booking_days",
            "max_attempts",
            "retry_delay_minutes",
            "expire_after_hours",
            "stale_claim_minutes",
        )


@dataclass(frozen=True, slots=True)
class SecurityConfig:
    #: Signs CSRF tokens, encrypts stored signing keys and staff TOTP secrets;
    #: generated into data_dir when empty. Keep it: another key locks staff out.
    #: When set: at least 32 characters besides spaces (a random string).
    secret_key: Secret = field(default_factory=lambda: Secret(""))
    session_idle_minutes: int = 30
    session_absolute_hours: int = 10
    intake_per_ip_per_hour: int = 10
    intake_global_per_minute: int = 120
    login_per_ip_per_minute: int = 20
    api_per_key_per_minute: int = 600
    #: Error reports from one address's browsers (``POST /gesprek/fout``).
    client_errors_per_ip_per_minute: int = 30
    #: Citizens' status pages (``/verzoek/…``) opened or used from one address.
    status_per_ip_per_hour: int = 60
    #: Changes (cancel, another slot, a new link) to one request from its status page.
    status_changes_per_request_per_hour: int = 10
    #: E-mails and texts one call sends (join links, interpreter invitations).
    messages_per_call_per_hour: int = 10
    #: Largest request body accepted, 1024 to 16777216 bytes.
    max_body_bytes: int = 64 * 1024
    #: Failed logins before the account is locked for a growing period.
    lockout_threshold: int = 5

    def __post_init__(self) -> None:
        _check_secret("secret_key", self.secret_key, 32)
        _at_least(
            self,
            1,
            "session_idle_minutes",
            "session_absolute_hours",
            "intake_per_ip_per_hour",
            "intake_global_per_minute",
            "login_per_ip_per_minute",
            "api_per_key_per_minute",
            "client_errors_per_ip_per_minute",
            "status_per_ip_per_hour",
            "status_changes_per_request_per_hour",
            "messages_per_call_per_hour",
            "lockout_threshold",
        )
        _between(self, "max_body_bytes", 1024, 16 * 1024 * 1024)


@dataclass(frozen=True, slots=True)
class RetentionConfig:
    #: Personal data is erased this many days after a request closes.
    personal_data_days: int = 30
    audit_days: int = 730
    purge_interval_minutes: int = 60

    def __post_init__(self) -> None:
        _at_least(self, 0, "personal_data_days")
        _at_least(self, 1, "audit_days", "purge_interval_minutes")


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    #: /metrics is served on its own plain-HTTP listener; port 0 turns it off.
    host: str = "127.0.0.1"
    port: int = 9464

    def __post_init__(self) -> None:
        _between(self, "port", 0, 65535)


@dataclass(frozen=True, slots=True)
class RedisConfig:
    #: Redis for what several control-plane processes share: the event bus that
    #: carries queue and call news between them, and the rate limits. "" = one
    #: process, everything in memory (the embedded default). e.g.
    #: "redis://redis.internal:6379/0", "rediss://…" (TLS), "unix:///run/redis.sock".
    url: str = ""
    #: Prefix of every key and channel, so several desks can share one Redis.
    prefix: str = "beeldbel"

    def __post_init__(self) -> None:
        if self.url and not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"url {self.url!r} must be redis://, rediss:// or unix:// (or empty)"
            )
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,40}", self.prefix):
            raise ValueError(
                f"prefix {self.prefix!r} must be 1-40 of A-Z a-z 0-9 _ . -"
            )


@dataclass(frozen=True, slots=True)
class WebhooksConfig:
    #: Seconds a webhook delivery may take (connect, send, answer) before it
    #: counts as failed and is retried.
    timeout_seconds: int = 10
    #: Deliver to private, loopback, link-local and other non-public addresses,
    #: and over plain http. Only for tests and closed networks: it lets webhooks
    #: reach the internal network.
    allow_private_addresses: bool = False
    #: The first retry waits about this long (milliseconds); each next one twice
    #: as long, with random jitter, at most retry_max_seconds.
    retry_base_ms: int = 5000
    retry_max_seconds: int = 3600
    #: An event still undelivered this long after it happened is dead-lettered:
    #: no more retries until an admin replays it.
    give_up_after_seconds: int = 24 * 3600
    #: How often (milliseconds) the process holding the outbox lease looks for
    #: due deliveries.
    poll_ms: int = 1000
    #: How long the outbox lease lasts unless renewed; another control-plane
    #: process takes over once it runs out. More than timeout_seconds.
    lease_seconds: int = 30
    #: After a secret rotation the old secret signs too, for this many hours.
    secret_overlap_hours: int = 24

    def __post_init__(self) -> None:
        _between(self, "timeout_seconds", 1, 300)
        _between(self, "retry_base_ms", 1, 3_600_000)
        _between(self, "poll_ms", 1, 60_000)
        _at_least(self, 1, "retry_max_seconds", "give_up_after_seconds")
        _between(self, "secret_overlap_hours", 0, 24 * 30)
        if self.lease_seconds <= self.timeout_seconds:
            raise ValueError(
                f"lease_seconds {self.lease_seconds} must be more than "
                f"timeout_seconds {self.timeout_seconds}"
            )


_NODE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _check_node_id(node_id: str) -> None:
    """A node id goes into tokens (``aud``), logs and the database: keep it plain."""
    if not _NODE_ID.fullmatch(node_id):
        raise ValueError(
            f"node_id {node_id!r} must be 1-64 of A-Z, a-z, 0-9, '.', '_', '-'"
        )


def _check_advertised(address: str) -> None:
    """ICE candidates carry this address: a wildcard is none a browser can use."""
    if address in ("0.0.0.0", "::", "[::]"):  # noqa: S104
        raise ValueError(
            f"advertised_address {address!r} (or udp_bind when it is empty) must "
            "be the address browsers send media to, e.g. the node's public IP; "
            "set advertised_address when udp_bind is 0.0.0.0 or ::"
        )


#: Rooms a media node takes when it says nothing else (one worker's CPU
#: ceiling was about 105-122 1:1 calls, bench/README.md).
DEFAULT_MEDIA_CAPACITY = 100


@dataclass(frozen=True, slots=True)
class MediaServerConfig:
    #: Address of the signalling/API HTTP listener (WebSocket /ws, /api, /metrics).
    host: str = "127.0.0.1"
    #: Port of the signalling/API HTTP listener; worker n listens on port + n.
    port: int = 8444
    #: This node's name: the ``aud`` a join token must carry.
    node_id: str = "media-1"
    #: The UDP port that carries every peer's ICE, DTLS and SRTP (worker n: + n).
    udp_port: int = 40000
    #: The local address the UDP port binds to.
    udp_bind: str = "127.0.0.1"
    #: The address put in ICE candidates (public IP behind NAT); "" = udp_bind.
    advertised_address: str = ""
    #: stun: URLs handed to clients as ICE servers; never a public default.
    stun_urls: tuple[str, ...] = ()
    #: turn:/turns: URLs for which time-limited TURN REST credentials are issued.
    turn_urls: tuple[str, ...] = ()
    #: coturn's static-auth-secret shared with this node (TURN REST API).
    turn_secret: Secret = field(default_factory=lambda: Secret(""))
    #: Lifetime in seconds of TURN credentials handed to a client.
    turn_ttl_seconds: int = 3600
    #: HTTPS URL of the control plane's JWKS (public keys of join tokens).
    jwks_url: str = "https://127.0.0.1:8443/.well-known/jwks.json"
    #: CA bundle to trust for jwks_url; "" = the system store.
    jwks_ca_file: str = ""
    #: The ``iss`` a join token must carry (the control plane's public URL).
    token_issuer: str = "https://127.0.0.1:8443"  # noqa: S105 - a URL
    #: Bearer secret the control plane presents on the server-to-server API: at
    #: least 16 characters; "" refuses every API call (`beeldbel run` makes one).
    api_secret: Secret = field(default_factory=lambda: Secret(""))
    #: Bearer secret for /metrics; "" serves /metrics only to 127.0.0.1.
    metrics_secret: Secret = field(default_factory=lambda: Secret(""))
    #: After SIGTERM, calls in progress may go on this many seconds.
    drain_timeout_seconds: int = 3600
    #: A peer with no packet for this many seconds is removed.
    peer_timeout_seconds: int = 30
    #: A connection that has not sent a whole request within this many seconds
    #: (when it opens, or idle between requests) is closed.
    header_timeout_seconds: int = 15
    #: Worker processes (one per core); 0 = one per CPU.
    workers: int = 1
    #: Certificate (PEM chain) for HTTPS/WSS signalling; "" serves plain HTTP
    #: (only behind a TLS-terminating proxy, or on loopback in tests).
    tls_cert_file: str = ""
    #: Private key of tls_cert_file.
    tls_key_file: str = ""
    #: Participants per room (agent, citizen, interpreter and a spare).
    max_participants: int = 4
    #: While datagrams keep coming, read the UDP port every this many
    #: microseconds instead of waking per datagram: about a quarter less CPU per
    #: forwarded packet at 20 calls for at most this much added latency
    #: (bench/README.md). 0 = wake per datagram; at most 5000.
    batch_window_us: int = 1000
    #: The control plane's URL this node reports its load to every
    #: heartbeat_seconds (POST /api/internal/media-nodes/<node_id>/heartbeat,
    #: Bearer api_secret; https is checked against jwks_ca_file, the same
    #: control plane). "" = no heartbeats: the node is never marked down.
    control_plane_url: str = ""
    #: Seconds between heartbeats; keep it well under [calls]
    #: node_down_after_seconds (1-60).
    heartbeat_seconds: int = 3
    #: Rooms this node accepts at most; the control plane places no more. One
    #: worker's CPU ceiling was about 105-122 1:1 calls (bench/README.md).
    capacity: int = DEFAULT_MEDIA_CAPACITY

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not a TCP port")
        if self.control_plane_url and not self.control_plane_url.startswith(
            ("https://", "http://")
        ):
            raise ValueError(
                f"control_plane_url {self.control_plane_url!r} must be http(s)"
            )
        _between(self, "heartbeat_seconds", 1, 60)
        _between(self, "capacity", 1, 100_000)
        if not 0 <= self.udp_port < 65536:  # 0: any free port (tests)
            raise ValueError(f"udp_port {self.udp_port} is not a UDP port")
        _check_advertised(self.advertised_address or self.udp_bind)
        if not self.jwks_url.startswith("https://"):
            raise ValueError(f"jwks_url {self.jwks_url!r} must be an https:// URL")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ValueError("tls_cert_file and tls_key_file go together")
        _check_node_id(self.node_id)
        _check_secret("api_secret", self.api_secret, 16)
        _at_least(self, 0, "workers", "drain_timeout_seconds")
        _between(self, "header_timeout_seconds", 1, 300)
        _at_least(self, 1, "peer_timeout_seconds", "turn_ttl_seconds")
        _at_least(self, 2, "max_participants")
        if not 0 <= self.batch_window_us <= 5000:
            raise ValueError(f"batch_window_us {self.batch_window_us} is not 0-5000")


@dataclass(frozen=True, slots=True)
class MailConfig:
    #: Send join links by e-mail; off until a mail server is configured.
    enabled: bool = False
    #: SMTP server (the organisation's relay).
    host: str = "127.0.0.1"
    port: int = 587
    #: "starttls" (upgrade on connect), "tls" (implicit TLS, port 465) or "none".
    security: str = "starttls"
    #: SMTP login; "" sends without AUTH.
    username: str = ""
    password: Secret = field(default_factory=lambda: Secret(""))
    #: The From address of join-link e-mails.
    sender: str = "beeldbel@localhost"
    #: Seconds to wait for the mail server before giving up.
    timeout_seconds: int = 15

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is not a TCP port")
        if self.security not in ("starttls", "tls", "none"):
            raise ValueError(f"security {self.security!r} must be starttls/tls/none")
        if "@" not in self.sender:
            raise ValueError(f"sender {self.sender!r} must be an e-mail address")
        if self.timeout_seconds < 1:
            raise ValueError("timeout_seconds must be at least 1")


@dataclass(frozen=True, slots=True)
class SmsConfig:
    #: Send join links by SMS through an HTTP gateway.
    enabled: bool = False
    #: The gateway's URL; it gets a JSON POST {"from", "to", "text"}.
    gateway_url: str = ""
    #: Full Authorization header value for the gateway, e.g. "Bearer abc".
    auth_header: Secret = field(default_factory=lambda: Secret(""))
    #: Sender name or number shown on the phone (at most 11 letters or a number).
    sender_id: str = "Beeldbel"
    #: Seconds to wait for the gateway before giving up.
    timeout_seconds: int = 10

    def __post_init__(self) -> None:
        if self.gateway_url and not self.gateway_url.startswith(
            ("https://", "http://")
        ):
            raise ValueError(f"gateway_url {self.gateway_url!r} must be http(s)")
        if self.enabled and not self.gateway_url:
            raise ValueError("gateway_url must be set when SMS is enabled")
        if self.timeout_seconds < 1:
            raise ValueError("timeout_seconds must be at least 1")


@dataclass(frozen=True, slots=True)
class MediaNodeConfig:
    """One media node (a media server worker) the control plane may place rooms on."""

    #: The node's ``[mediaserver] node_id`` (worker n of a multi-worker server:
    #: ``<node_id>-<n>``); join tokens for its rooms carry it as ``aud``.
    node_id: str
    #: Its server-to-server API (worker n: the server's port + n).
    api_url: str
    #: Its WebSocket URL for browsers (worker n: the server's port + n).
    ws_url: str

    def __post_init__(self) -> None:
        _check_node_id(self.node_id)
        if not self.api_url.startswith(("https://", "http://")):
            raise ValueError(f"api_url {self.api_url!r} must be http(s)")
        if not self.ws_url.startswith(("wss://", "ws://")):
            raise ValueError(f"ws_url {self.ws_url!r} must be ws(s)")


_MEDIA_API_URL = "http://127.0.0.1:8444"
_MEDIA_WS_URL = "ws://127.0.0.1:8444/ws"


@dataclass(frozen=True, slots=True)
class CallsConfig:
    #: The media node's server-to-server API (rooms), reached by the control plane.
    media_api_url: str = _MEDIA_API_URL
    #: CA bundle to trust for an https:// media API URL; "" = the system store.
    media_api_ca_file: str = ""
    #: The WebSocket URL browsers use to reach the media node (usually wss://).
    media_ws_url: str = _MEDIA_WS_URL
    #: Several media nodes (e.g. the workers of `[mediaserver] workers = n`, worker
    #: i = node_id "<node_id>-<i>" on port + i); each new room goes to the one with
    #: the fewest open calls. Empty = the one node of media_api_url, media_ws_url
    #: and [mediaserver] node_id; when set, leave those two at their defaults.
    #: Example:
    #: [{node_id = "media-1-0", api_url = "http://10.0.0.5:8444",
    #:   ws_url = "wss://media.example.org:8444/ws"}, ...]
    media_nodes: tuple[MediaNodeConfig, ...] = ()
    #: Video codec of new rooms: VP8 or H264.
    video_codec: str = "VP8"
    #: Lifetime in seconds of a media join token (one per (re)connect).
    token_ttl_seconds: int = 60
    #: A citizen or interpreter link not opened within this many minutes expires.
    link_ttl_minutes: int = 240
    #: Seconds to wait for the media node's API before giving up.
    api_timeout_seconds: int = 10
    #: A node whose heartbeats stop for this many seconds is marked down and its
    #: calls end (agents are told to start again): 3 missed heartbeats of 3 s plus
    #: 1 s, so agents hear within about 12 s. Nodes that never sent one are not
    #: watched (3-300).
    node_down_after_seconds: int = 10
    #: Browser tests only: call pages publish window.beeldbel (the live connection,
    #: its figures and a quality simulator). Refused unless public_url is loopback.
    test_hooks: bool = False

    def __post_init__(self) -> None:
        if not self.media_api_url.startswith(("https://", "http://")):
            raise ValueError(f"media_api_url {self.media_api_url!r} must be http(s)")
        if not self.media_ws_url.startswith(("wss://", "ws://")):
            raise ValueError(f"media_ws_url {self.media_ws_url!r} must be ws(s)")
        if self.media_nodes:
            self._check_media_nodes()
        if self.video_codec not in ("VP8", "H264"):
            raise ValueError(f"video_codec {self.video_codec!r} must be VP8 or H264")
        for name in ("token_ttl_seconds", "link_ttl_minutes", "api_timeout_seconds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        _between(self, "node_down_after_seconds", 3, 300)

    def _check_media_nodes(self) -> None:
        if (self.media_api_url, self.media_ws_url) != (_MEDIA_API_URL, _MEDIA_WS_URL):
            # they would be silently unused: say so instead
            raise ValueError(
                "media_api_url/media_ws_url and media_nodes exclude each other"
            )
        for name in ("node_id", "api_url", "ws_url"):
            values = [getattr(node, name) for node in self.media_nodes]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"media_nodes has {name} {twice[0]!r} twice")


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    desk: DeskConfig = field(default_factory=DeskConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    mediaserver: MediaServerConfig = field(default_factory=MediaServerConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    sms: SmsConfig = field(default_factory=SmsConfig)
    calls: CallsConfig = field(default_factory=CallsConfig)
    redis: RedisConfig = field(default_factory=RedisConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)


def media_nodes(config: Config) -> tuple[MediaNodeConfig, ...]:
    """The media nodes rooms may go on, in config order: ``[calls] media_nodes``, or
    else the single node of ``media_api_url``, ``media_ws_url`` and ``node_id``."""
    calls = config.calls
    if calls.media_nodes:
        return calls.media_nodes
    single = MediaNodeConfig(
        config.mediaserver.node_id, calls.media_api_url, calls.media_ws_url
    )
    return (single,)


ENV_PREFIX = "BEELDBEL_"


def load_config(
    path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Build the configuration from defaults, an optional TOML file and ``environ``."""
    environ = environ if environ is not None else {}
    if path is None and environ.get(ENV_PREFIX + "CONFIG"):
        path = environ[ENV_PREFIX + "CONFIG"]
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    _merge_environ(raw, environ)
    config: Config = _build(Config, raw, "")
    _check_across_sections(config)
    return config


def _check_across_sections(config: Config) -> None:
    """What one section cannot judge alone."""
    public_url = config.server.public_url
    if config.calls.test_hooks and not is_loopback_url(public_url):
        raise ConfigError(
            f"[calls] test_hooks is for browser tests: [server] public_url "
            f"{public_url} is not a loopback address"
        )


def is_loopback_url(url: str) -> bool:
    """The URL's host is this machine only: localhost or a loopback address."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _merge_environ(raw: dict[str, Any], environ: Mapping[str, str]) -> None:
    sections = {f.name: f for f in dataclasses.fields(Config)}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        rest = name[len(ENV_PREFIX) :].lower()
        section, _, key = rest.partition("_")
        if section not in sections or not key:
            raise ConfigError(f"unknown environment variable {name}")
        raw.setdefault(section, {})[key] = _EnvValue(value, name)


class _EnvValue(str):
    """A value from the environment, converted by the field's type at build."""

    source: str

    def __new__(cls, value: str, source: str) -> _EnvValue:
        obj = super().__new__(cls, value)
        obj.source = source
        return obj


def _build(cls: type[Any], raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{prefix.rstrip('.')}] must be a table")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"unknown config key {prefix}{unknown[0]}")
    missing = [
        f.name
        for f in dataclasses.fields(cls)
        if f.name not in raw
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"config key {prefix}{missing[0]} is missing")
    kwargs = {
        name: _convert(hints[name], value, f"{prefix}{name}")
        for name, value in raw.items()
    }
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:
        section = prefix.rstrip(".") or "root"
        raise ConfigError(f"invalid config [{section}]: {exc}") from None


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, key + ".")
    if isinstance(value, _EnvValue) and tp not in (str, Secret):
        value = _parse_env(tp, value, key)
    if tp is Secret:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key} must be a string")
        return Secret(str(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"config key {key} must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"config key {key} must be a whole number, not {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"config key {key} must be a string, not {value!r}")
        return str(value)
    if origin is tuple:
        (item_tp, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"config key {key} must be a list")
        return tuple(_convert(item_tp, v, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict) or not all(
            isinstance(v, str) for v in value.values()
        ):
            raise ConfigError(f"config key {key} must be a table of strings")
        return dict(value)
    if origin in (typing.Union, types.UnionType):
        raise ConfigError(f"config key {key} has an unsupported type")
    raise ConfigError(f"config key {key} has an unsupported type {tp!r}")


def _parse_env(tp: Any, value: _EnvValue, key: str) -> Any:
    if tp is bool:
        lowered = value.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{value.source}={value!r} must be true or false")
    if tp is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(
                f"{value.source}={value!r} must be a whole number"
            ) from None
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        raise ConfigError(f"{value.source} for {key} must be JSON") from None
