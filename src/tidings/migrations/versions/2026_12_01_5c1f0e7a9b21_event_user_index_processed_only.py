"""The index of events by user holds processed events only

Ingest inserts every event as `received`; an index of all events by user took a random page
per event in the ingest commit, half of its cost. Processed (and failed) events are indexed
by user when processing changes their status; unprocessed ones are already in
`ix_event_pending_user`. Queries by user read both (docs/benchmarks.md, Batch).

Revision ID: 5c1f0e7a9b21
Revises: 81ef99442833
Create Date: 2026-12-01 18:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c1f0e7a9b21"
down_revision: str | None = "81ef99442833"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_event_user", table_name="event")
    op.create_index(
        "ix_event_user",
        "event",
        ["environment_id", "source", "user_id", "id"],
        unique=False,
        sqlite_where=sa.text("status <> 'received'"),
        postgresql_where=sa.text("status <> 'received'"),
    )


def downgrade() -> None:
    op.drop_index("ix_event_user", table_name="event")
    op.create_index(
        "ix_event_user", "event", ["environment_id", "source", "user_id", "id"], unique=False
    )
