"""call records: the media node each room is on

Revision ID: 0003_call_media_node
Revises: 0002_calls
Create Date: 2026-12-04 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_call_media_node"
down_revision: str | None = "0002_calls"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # nullable: calls recorded before this revision are on the first node
    with op.batch_alter_table("call_records") as batch:
        batch.add_column(sa.Column("media_node", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("call_records") as batch:
        batch.drop_column("media_node")
