"""video calls: signing keys, join links, call records

Revision ID: 0002_calls
Revises: 0001
Create Date: 2026-11-27 21:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_calls"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kid", sa.String(length=32), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("retired_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("kid", name=op.f("uq_signing_keys_kid")),
    )
    op.create_table(
        "join_links",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("browser_session_hash", sa.String(length=64), nullable=True),
        sa.Column("voided_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_join_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_join_links_token_hash")),
        sa.UniqueConstraint(
            "browser_session_hash", name=op.f("uq_join_links_browser_session_hash")
        ),
    )
    op.create_index(
        op.f("ix_join_links_request_id"), "join_links", ["request_id"], unique=False
    )
    op.create_index(
        op.f("ix_join_links_room_id"), "join_links", ["room_id"], unique=False
    )
    op.create_table(
        "call_records",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=True),
        sa.Column("room_id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("join_to_first_picture_ms", sa.Integer(), nullable=True),
        sa.Column("connection_type", sa.String(length=8), nullable=False),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.Column("rtt_ms_p50", sa.Integer(), nullable=True),
        sa.Column("rtt_ms_p95", sa.Integer(), nullable=True),
        sa.Column("loss_pct", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("citizen_ease", sa.Integer(), nullable=True),
        sa.Column("citizen_av_quality", sa.Integer(), nullable=True),
        sa.Column("citizen_would_use_again", sa.String(length=8), nullable=True),
        sa.Column("citizen_comment", sa.Text(), nullable=True),
        sa.Column("citizen_answered_at", sa.DateTime(), nullable=True),
        sa.Column("employee_quality", sa.Integer(), nullable=True),
        sa.Column("employee_case_handled", sa.String(length=8), nullable=True),
        sa.Column("employee_would_use_again", sa.String(length=8), nullable=True),
        sa.Column("employee_answered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_call_records")),
        sa.UniqueConstraint("room_id", name=op.f("uq_call_records_room_id")),
    )
    op.create_index(
        op.f("ix_call_records_request_id"),
        "call_records",
        ["request_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_call_records_request_id"), table_name="call_records")
    op.drop_table("call_records")
    op.drop_index(op.f("ix_join_links_room_id"), table_name="join_links")
    op.drop_index(op.f("ix_join_links_request_id"), table_name="join_links")
    op.drop_table("join_links")
    op.drop_table("signing_keys")
