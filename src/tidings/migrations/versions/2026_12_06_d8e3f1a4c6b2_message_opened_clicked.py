"""message: `opened_at` and `clicked_at`, the first open and click a provider reported

Revision ID: d8e3f1a4c6b2
Revises: a41c7e2f9b35
Create Date: 2026-12-06 11:15:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.models.base

revision: str = "d8e3f1a4c6b2"
down_revision: str | None = "a41c7e2f9b35"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable columns with no default: an ALTER TABLE ADD COLUMN on SQLite and on Postgres,
    # without rewriting the table.
    op.add_column("message", sa.Column("opened_at", tidings.models.base.UTCDateTime()))
    op.add_column("message", sa.Column("clicked_at", tidings.models.base.UTCDateTime()))


def downgrade() -> None:
    with op.batch_alter_table("message") as batch:
        batch.drop_column("clicked_at")
        batch.drop_column("opened_at")
