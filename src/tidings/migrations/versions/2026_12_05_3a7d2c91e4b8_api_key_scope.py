"""api key scope: `secret` (the whole API) or `ingest` (the ingest endpoints only)

Revision ID: 3a7d2c91e4b8
Revises: 5c1f0e7a9b21
Create Date: 2026-12-05 20:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3a7d2c91e4b8"
down_revision: str | None = "5c1f0e7a9b21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every existing key could call the whole API: it stays a secret key.
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.add_column(
            sa.Column("scope", sa.String(length=16), nullable=False, server_default="secret")
        )


def downgrade() -> None:
    with op.batch_alter_table("api_key") as batch_op:
        batch_op.drop_column("scope")
