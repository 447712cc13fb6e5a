"""call events and live call state in the database, for several control planes

Revision ID: 0005_shared_call_state
Revises: 0004_totp_secrets_encrypted
Create Date: 2026-12-09 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_shared_call_state"
down_revision: str | None = "0004_totp_secrets_encrypted"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "call_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(80), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("channel", "seq", name="uq_call_events_channel_seq"),
    )
    op.create_index("ix_call_events_created_at", "call_events", ["created_at"])
    op.create_table(
        "live_calls",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("join_link", sa.Text, nullable=True),
        sa.Column("interpreter_link", sa.Text, nullable=True),
        sa.Column("message", sa.Text, nullable=True),
        sa.Column("opened", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_live_calls_updated_at", "live_calls", ["updated_at"])


def downgrade() -> None:
    op.drop_table("live_calls")
    op.drop_table("call_events")
