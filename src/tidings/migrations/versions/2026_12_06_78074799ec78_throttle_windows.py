"""throttle windows: the count of each throttle step's key in its current window

Revision ID: 78074799ec78
Revises: be613ec01f61
Create Date: 2026-12-06 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.models.base

revision: str = "78074799ec78"
down_revision: str | None = "be613ec01f61"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "throttle_window",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=1000), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("opened_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("ends_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_throttle_window_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_throttle_window")),
        sa.UniqueConstraint(
            "environment_id", "key", name=op.f("uq_throttle_window_environment_id_key")
        ),
    )


def downgrade() -> None:
    op.drop_table("throttle_window")
