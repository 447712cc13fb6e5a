"""call records of phone callbacks (channel), and the last use of API keys

Revision ID: 0007_phone_surveys_key_use
Revises: 0006_media_nodes
Create Date: 2026-12-06 08:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_phone_surveys_key_use"
down_revision: str | None = "0006_media_nodes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # every record so far is of a video call
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(
            sa.Column("channel", sa.String(8), nullable=False, server_default="video")
        )
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("last_used_at")
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("channel")
