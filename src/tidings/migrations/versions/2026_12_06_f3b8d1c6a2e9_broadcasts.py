"""broadcasts: a template sent to a list, an audience or a tenant, chunk by chunk

Revision ID: f3b8d1c6a2e9
Revises: f3a9c2d71b58
Create Date: 2026-12-06 13:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "f3b8d1c6a2e9"
down_revision: str | None = "f3a9c2d71b58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "broadcast",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("broadcast_id", sa.String(length=60), nullable=False),
        sa.Column("template", sa.String(length=300), nullable=False),
        sa.Column("target", JSON, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("window", JSON, nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cursor", KEY, nullable=False),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.Column("next_chunk_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paced_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("swept_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_broadcast_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_broadcast_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast")),
        sa.UniqueConstraint(
            "environment_id", "broadcast_id", name=op.f("uq_broadcast_environment_id_broadcast_id")
        ),
    )
    op.create_index("ix_broadcast_due", "broadcast", ["status", "next_chunk_at"])
    op.create_index("ix_broadcast_paced", "broadcast", ["environment_id", "paced_until"])


def downgrade() -> None:
    op.drop_index("ix_broadcast_paced", table_name="broadcast")
    op.drop_index("ix_broadcast_due", table_name="broadcast")
    op.drop_table("broadcast")
