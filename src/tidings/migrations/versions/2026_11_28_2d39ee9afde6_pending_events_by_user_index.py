"""An index of unprocessed events by user

Revision ID: 2d39ee9afde6
Revises: f2c862c450dd
Create Date: 2026-11-28 16:37:52.371835
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2d39ee9afde6"
down_revision: str | None = "f2c862c450dd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_event_pending_user",
        "event",
        ["environment_id", "source", "user_id", "id"],
        unique=False,
        sqlite_where=sa.text("status = 'received'"),
        postgresql_where=sa.text("status = 'received'"),
    )


def downgrade() -> None:
    op.drop_index("ix_event_pending_user", table_name="event")
