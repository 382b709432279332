"""automation_schedule: the schedule triggers of enabled automations and their next ticks

Revision ID: a41c7e2f9b35
Revises: b47c1e9d2f36
Create Date: 2026-12-06 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.models.base

revision: str = "a41c7e2f9b35"
down_revision: str | None = "b47c1e9d2f36"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on Postgres, as the models' JSONValue.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "automation_schedule",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "automation_pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("trigger", JSON, nullable=False),
        sa.Column("next_fire_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("last_tick", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("firing_tick", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column(
            "firing_after",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=True,
        ),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["automation_pk"],
            ["automation.id"],
            name=op.f("fk_automation_schedule_automation_pk_automation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_automation_schedule_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_schedule")),
    )
    op.create_index(
        "ix_automation_schedule_due", "automation_schedule", ["next_fire_at"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_automation_schedule_due", table_name="automation_schedule")
    op.drop_table("automation_schedule")
