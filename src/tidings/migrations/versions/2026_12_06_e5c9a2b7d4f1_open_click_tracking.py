"""open and click tracking settings: `tracking` on each template, its versions, and the
environment (its default)

Revision ID: e5c9a2b7d4f1
Revises: c5a9e2b7d410
Create Date: 2026-12-06 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "e5c9a2b7d4f1"
down_revision: str | None = "c5a9e2b7d410"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on Postgres, as the models' JSONValue.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
TABLES = ("notification", "notification_version", "environment")


def upgrade() -> None:
    # Nullable columns with no default (null: the environment's default, which is off): an
    # ALTER TABLE ADD COLUMN on SQLite and on Postgres, without rewriting the table.
    for table in TABLES:
        op.add_column(table, sa.Column("tracking", JSON, nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("tracking")
