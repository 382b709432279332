"""suppression: the suppression list and the soft bounces in a row of each address

Revision ID: c5a7e2d9f1b3
Revises: e5c9a2b7d4f1
Create Date: 2026-12-06 12:00:00.000000
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import tidings.models.base

revision: str = "c5a7e2d9f1b3"
down_revision: str | None = "e5c9a2b7d4f1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _environment_columns() -> list[Any]:
    return [
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
    ]


def _environment_keys(table: str) -> list[Any]:
    return [
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f(f"fk_{table}_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f(f"fk_{table}_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
    ]


def upgrade() -> None:
    op.create_table(
        "suppression",
        *_environment_columns(),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("topic_id", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=60), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("user_id", sa.String(length=300), nullable=True),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        *_environment_keys("suppression"),
        sa.UniqueConstraint(
            "environment_id",
            "channel",
            "address",
            "topic_id",
            name=op.f("uq_suppression_environment_id_channel_address_topic_id"),
        ),
    )
    op.create_index("ix_suppression_listing", "suppression", ["environment_id", "id"], unique=False)
    op.create_table(
        "soft_bounce_streak",
        *_environment_columns(),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        *_environment_keys("soft_bounce_streak"),
        sa.UniqueConstraint(
            "environment_id",
            "channel",
            "address",
            name=op.f("uq_soft_bounce_streak_environment_id_channel_address"),
        ),
    )


def downgrade() -> None:
    op.drop_table("soft_bounce_streak")
    op.drop_index("ix_suppression_listing", table_name="suppression")
    op.drop_table("suppression")
