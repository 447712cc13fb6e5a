"""media nodes with their heartbeats, and room reservations for atomic placement

Revision ID: 0006_media_nodes
Revises: 0005_shared_call_state
Create Date: 2026-12-03 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_media_nodes"
down_revision: str | None = "0005_shared_call_state"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "media_nodes",
        sa.Column("node_id", sa.String(64), primary_key=True),
        sa.Column("capacity", sa.Integer, nullable=False, server_default="100"),
        sa.Column("rooms", sa.Integer, nullable=False, server_default="0"),
        sa.Column("participants", sa.Integer, nullable=False, server_default="0"),
        sa.Column("packets_per_second", sa.Float, nullable=False, server_default="0"),
        sa.Column("cpu", sa.Float, nullable=False, server_default="0"),
        sa.Column("draining", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("state", sa.String(8), nullable=False, server_default="up"),
        sa.Column("last_seen", sa.DateTime(), nullable=True),
        sa.Column("state_changed_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "room_reservations",
        sa.Column("room_id", sa.String(64), primary_key=True),
        sa.Column("node_id", sa.String(64), nullable=False),
        sa.Column("reserved_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_room_reservations_node_id", "room_reservations", ["node_id"])
    op.create_index(
        "ix_call_records_media_node_ended_at",
        "call_records",
        ["media_node", "ended_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_call_records_media_node_ended_at", "call_records")
    op.drop_table("room_reservations")
    op.drop_table("media_nodes")
