"""automation_run_wait: runs paused at a wait-for-event step, by the events that resume them

Revision ID: 5e2b7c4d9a10
Revises: 78074799ec78
Create Date: 2026-12-06 07:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.models.base

revision: str = "5e2b7c4d9a10"
down_revision: str | None = "78074799ec78"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "automation_run_wait",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "run_pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("recipient", sa.String(length=300), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("event", sa.String(length=300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("match_fields", sa.Text(), nullable=False),
        sa.Column("match_key", sa.String(length=64), nullable=False),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["automation_run.id"],
            name=op.f("fk_automation_run_wait_run_pk_automation_run"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_automation_run_wait_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_run_wait")),
        sa.UniqueConstraint("run_pk", name=op.f("uq_automation_run_wait_run_pk")),
    )
    op.create_index(
        "ix_automation_run_wait_lookup",
        "automation_run_wait",
        ["environment_id", "recipient", "source", "event", "match_key"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_automation_run_wait_lookup", table_name="automation_run_wait")
    op.drop_table("automation_run_wait")
