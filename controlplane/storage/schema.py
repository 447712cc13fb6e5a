"""The control plane's tables (SQLAlchemy Core). Alembic migrations follow these."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Stores UTC without a zone (SQLite has none) and returns aware UTC datetimes."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("UtcDateTime needs an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)  # noqa: S101
        return value.replace(tzinfo=UTC)


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    # agent, supervisor or admin
    sa.Column("role", sa.String(16), nullable=False),
    # base32 secret, encrypted (controlplane.security.secret_box, purpose TOTP_SECRETS)
    sa.Column("totp_secret", sa.String(255), nullable=True),
    sa.Column("totp_confirmed", sa.Boolean, nullable=False, default=False),
    # last accepted TOTP time step, so a code cannot be replayed
    sa.Column("totp_last_step", sa.BigInteger, nullable=False, default=0),
    sa.Column("must_change_password", sa.Boolean, nullable=False, default=False),
    sa.Column("failed_logins", sa.Integer, nullable=False, default=0),
    sa.Column("locked_until", UtcDateTime, nullable=True),
    sa.Column("active", sa.Boolean, nullable=False, default=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    # SHA-256 of the cookie value: a leaked table does not leak sessions
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column(
        "user_id",
        sa.Integer,
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("last_seen_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    # password checked but second factor not yet
    sa.Column("mfa_done", sa.Boolean, nullable=False, default=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
)

callback_requests = sa.Table(
    "callback_requests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # shown to the citizen, e.g. BB-4K7Q-9M2X; random, not sequential
    sa.Column("reference", sa.String(16), nullable=False, unique=True),
    # form nonce or API idempotency scope: one submission makes one request
    sa.Column("submission_key", sa.String(96), nullable=True, unique=True),
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("channel", sa.String(8), nullable=False),
    sa.Column("topic", sa.String(32), nullable=False),
    sa.Column("language", sa.String(2), nullable=False),
    # web, phone (entered by staff) or api
    sa.Column("source", sa.String(8), nullable=False),
    # personal data: erased by the purge
    sa.Column("name", sa.String(200), nullable=True),
    sa.Column("phone", sa.String(20), nullable=True),
    sa.Column("email", sa.String(254), nullable=True),
    sa.Column("accessibility_note", sa.Text, nullable=True),
    # accessibility needs as codes; kept for statistics after the purge
    sa.Column("accessibility", sa.JSON, nullable=False, default=list),
    # asap or slot
    sa.Column("preferred", sa.String(8), nullable=False),
    sa.Column("slot_start", UtcDateTime, nullable=True),
    sa.Column("due_at", UtcDateTime, nullable=False, index=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
    sa.Column(
        "claimed_by",
        sa.Integer,
        sa.ForeignKey("users.id", ondelete="SET NULL"),
        nullable=True,
    ),
    sa.Column("claimed_at", UtcDateTime, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("first_attempt_at", UtcDateTime, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("closed_at", UtcDateTime, nullable=True, index=True),
    sa.Column("purged_at", UtcDateTime, nullable=True),
    sa.Column("api_key_id", sa.Integer, nullable=True),
)

request_notes = sa.Table(
    "request_notes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "request_id",
        sa.Integer,
        sa.ForeignKey("callback_requests.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("user_id", sa.Integer, nullable=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", UtcDateTime, nullable=False, index=True),
    sa.Column("user_id", sa.Integer, nullable=True),
    # kept as text so the entry outlives the account
    sa.Column("username", sa.String(64), nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("request_id", sa.Integer, nullable=True, index=True),
    # never personal data of citizens: codes, states, reasons chosen from lists
    sa.Column("details", sa.JSON, nullable=False, default=dict),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(100), nullable=False),
    # first characters of the key, to find it without storing it
    sa.Column("prefix", sa.String(16), nullable=False, unique=True),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("scopes", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # to the minute: the key authenticated a call (NULL: never used)
    sa.Column("last_used_at", UtcDateTime, nullable=True),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)

idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("api_key_id", sa.Integer, nullable=False),
    sa.Column("key", sa.String(255), nullable=False),
    # hash of method, path and body: the same key with another body is refused
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("api_key_id", "key", name="uq_idempotency_keys_key"),
)

desk_settings = sa.Table(
    "desk_settings",
    metadata,
    # "topics" or "opening_hours": admin changes on top of the config file
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("updated_at", UtcDateTime, nullable=False),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kid", sa.String(32), nullable=False, unique=True),
    # Ed25519 private key (raw bytes) encrypted with a key derived from secret_key
    sa.Column("private_key", sa.Text, nullable=False),
    sa.Column("public_jwk", sa.JSON, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    # no longer published in the JWKS; its tokens are refused
    sa.Column("retired_at", UtcDateTime, nullable=True),
)

join_links = sa.Table(
    "join_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # SHA-256 of the single-use token in the link's fragment
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("request_id", sa.Integer, nullable=True, index=True),
    sa.Column("room_id", sa.String(64), nullable=False, index=True),
    # citizen or interpreter
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
    sa.Column("used_at", UtcDateTime, nullable=True),
    # SHA-256 of the browser-session cookie the link was exchanged for
    sa.Column("browser_session_hash", sa.String(64), nullable=True, unique=True),
    # the call ended: neither link nor session joins the room again
    sa.Column("voided_at", UtcDateTime, nullable=True),
)

call_records = sa.Table(
    "call_records",
    metadata,
    # quality and survey of one call; no personal data, survives the purge
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.Integer, nullable=True, index=True),
    # video: a room on a media node; phone: "phone:<request id>", one phone
    # callback per request, recorded for its surveys only (no quality, no node)
    sa.Column("room_id", sa.String(64), nullable=False, unique=True),
    # video or phone: the surveys of both compare on the same questions
    sa.Column("channel", sa.String(8), nullable=False, default="video"),
    # the media node (worker) the room is on; NULL: from before 0003, the first node
    sa.Column("media_node", sa.String(64), nullable=True),
    sa.Column("started_at", UtcDateTime, nullable=False),
    sa.Column("ended_at", UtcDateTime, nullable=True),
    sa.Column("join_to_first_picture_ms", sa.Integer, nullable=True),
    # direct, relay or unknown
    sa.Column("connection_type", sa.String(8), nullable=False, default="unknown"),
    sa.Column("reconnects", sa.Integer, nullable=False, default=0),
    sa.Column("rtt_ms_p50", sa.Integer, nullable=True),
    sa.Column("rtt_ms_p95", sa.Integer, nullable=True),
    sa.Column("loss_pct", sa.Float, nullable=True),
    sa.Column("outcome", sa.String(32), nullable=True),
    # citizen survey: 1-5, 1-5, yes/no/unsure, free text (at most 1000 characters)
    sa.Column("citizen_ease", sa.Integer, nullable=True),
    sa.Column("citizen_av_quality", sa.Integer, nullable=True),
    sa.Column("citizen_would_use_again", sa.String(8), nullable=True),
    sa.Column("citizen_comment", sa.Text, nullable=True),
    sa.Column("citizen_answered_at", UtcDateTime, nullable=True),
    # employee survey: 1-5, yes/no/partly, yes/no/unsure
    sa.Column("employee_quality", sa.Integer, nullable=True),
    sa.Column("employee_case_handled", sa.String(8), nullable=True),
    sa.Column("employee_would_use_again", sa.String(8), nullable=True),
    sa.Column("employee_answered_at", UtcDateTime, nullable=True),
)

call_events = sa.Table(
    "call_events",
    metadata,
    # one call's news for its pages, shared by every control-plane process: a
    # page that reconnects to another process resumes after its last seq
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # a room id, or "guest:<room id>" for what the citizen's page may see
    sa.Column("channel", sa.String(80), nullable=False),
    # 1, 2, … per channel, without gaps (a clash on the unique key is retried)
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(40), nullable=False),
    # JSON: codes and times only, never a citizen's address, number or link
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False, index=True),
    sa.UniqueConstraint("channel", "seq", name="uq_call_events_channel_seq"),
)

live_calls = sa.Table(
    "live_calls",
    metadata,
    # what staff pages of a running call show, whichever process serves them
    sa.Column("room_id", sa.String(64), primary_key=True),
    # the join links as sent (sealed with the server's secret key): a link is a
    # credential until it is opened
    sa.Column("join_link", sa.Text, nullable=True),
    sa.Column("interpreter_link", sa.Text, nullable=True),
    # the employee's message for the waiting room (personal data: purged)
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("opened", sa.Boolean, nullable=False, default=False),
    sa.Column("updated_at", UtcDateTime, nullable=False, index=True),
)

media_nodes = sa.Table(
    "media_nodes",
    metadata,
    # one media node (a media server worker), as its heartbeats report it; the
    # row is also the lock that makes placement on the node atomic
    sa.Column("node_id", sa.String(64), primary_key=True),
    # rooms it accepts at most (its [mediaserver] capacity)
    sa.Column("capacity", sa.Integer, nullable=False, default=100),
    # load at its last heartbeat
    sa.Column("rooms", sa.Integer, nullable=False, default=0),
    sa.Column("participants", sa.Integer, nullable=False, default=0),
    sa.Column("packets_per_second", sa.Float, nullable=False, default=0.0),
    # process CPU time per second of wall time (1.0 = one core busy)
    sa.Column("cpu", sa.Float, nullable=False, default=0.0),
    sa.Column("draining", sa.Boolean, nullable=False, default=False),
    # up or down; NULL last_seen: never heard from, placed on but not watched
    sa.Column("state", sa.String(8), nullable=False, default="up"),
    sa.Column("last_seen", UtcDateTime, nullable=True),
    sa.Column("state_changed_at", UtcDateTime, nullable=True),
)

room_reservations = sa.Table(
    "room_reservations",
    metadata,
    # a room being placed: it counts against its node's capacity until its call
    # record exists (then the record counts) or it expires
    sa.Column("room_id", sa.String(64), primary_key=True),
    sa.Column("node_id", sa.String(64), nullable=False, index=True),
    sa.Column("reserved_at", UtcDateTime, nullable=False),
)

# placement counts the open calls of a node
sa.Index(
    "ix_call_records_media_node_ended_at",
    call_records.c.media_node,
    call_records.c.ended_at,
)

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    # where an integrator's API key wants its webhooks (controlplane.webhooks)
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "api_key_id",
        sa.Integer,
        sa.ForeignKey("api_keys.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("url", sa.String(2000), nullable=False),
    # the event types it wants, e.g. ["callback.claimed", "call.ended"]
    sa.Column("event_types", sa.JSON, nullable=False),
    # the signing secret (whsec_…), sealed with the server's secret key
    sa.Column("secret", sa.Text, nullable=False),
    # the secret before the last rotation: signs too until previous_until
    sa.Column("previous_secret", sa.Text, nullable=True),
    sa.Column("previous_until", UtcDateTime, nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    # one event for one endpoint, written in the transaction of the change it
    # tells of; codes and times only, never a citizen's personal data
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # the Standard Webhooks message id (webhook-id): the same on every retry
    sa.Column("message_id", sa.String(40), nullable=False),
    sa.Column(
        "endpoint_id",
        sa.Integer,
        sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # deliveries of one request to one endpoint go in id order
    sa.Column("request_id", sa.Integer, nullable=False),
    sa.Column("event_type", sa.String(40), nullable=False),
    # the JSON body as signed and sent
    sa.Column("payload", sa.Text, nullable=False),
    # pending, delivered or dead
    sa.Column("state", sa.String(12), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # when it is due; while one is being sent, when that try counts as lost
    sa.Column("next_attempt_at", UtcDateTime, nullable=False),
    # the last try's HTTP status, or a code (timeout, address_refused, ...)
    sa.Column("last_error", sa.String(40), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("delivered_at", UtcDateTime, nullable=True),
)

webhook_leases = sa.Table(
    "webhook_leases",
    metadata,
    # which control-plane process drains the outbox, until when (renewed)
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("holder", sa.String(64), nullable=False),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)

# the drainer reads pending rows in order; a request's rows by endpoint
sa.Index(
    "ix_webhook_outbox_state_next_attempt_at",
    webhook_outbox.c.state,
    webhook_outbox.c.next_attempt_at,
)
sa.Index(
    "ix_webhook_outbox_endpoint_id_request_id",
    webhook_outbox.c.endpoint_id,
    webhook_outbox.c.request_id,
)
