"""Unprocessed events indexed in arrival order, not by user

Ingest inserts every event as `received`. In `ix_event_pending_user`, ordered by user, each
event of a batch landed on a page of its own once a backlog had built up; in
`ix_event_pending`, ordered by id, a batch appends to the last page. A user's earlier
unprocessed events are read from it with the user id it holds.

Revision ID: 9d4b2e7c1a53
Revises: b8e3f1a6c2d9
Create Date: 2026-12-07 06:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "9d4b2e7c1a53"
down_revision: str | None = "b8e3f1a6c2d9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RECEIVED = sa.text("status = 'received'")


def upgrade() -> None:
    op.drop_index("ix_event_pending_user", table_name="event")
    op.create_index(
        "ix_event_pending",
        "event",
        ["environment_id", "source", "id", "user_id"],
        unique=False,
        sqlite_where=RECEIVED,
        postgresql_where=RECEIVED,
    )


def downgrade() -> None:
    op.drop_index("ix_event_pending", table_name="event")
    op.create_index(
        "ix_event_pending_user",
        "event",
        ["environment_id", "source", "user_id", "id"],
        unique=False,
        sqlite_where=RECEIVED,
        postgresql_where=RECEIVED,
    )
