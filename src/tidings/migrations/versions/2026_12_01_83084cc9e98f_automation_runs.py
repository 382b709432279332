"""automation runs

Revision ID: 83084cc9e98f
Revises: 2d39ee9afde6
Create Date: 2026-12-01 14:42:53.334521
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.models.base

revision: str = "83084cc9e98f"
down_revision: str | None = "2d39ee9afde6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "automation_run",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("automation_id", sa.String(length=200), nullable=True),
        sa.Column(
            "version_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("source", sa.String(length=400), nullable=False),
        sa.Column("event_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("parent_run_id", sa.String(length=40), nullable=True),
        sa.Column("recipient", sa.String(length=300), nullable=True),
        sa.Column("cancelation_token", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("step_count", sa.Integer(), nullable=False),
        sa.Column(
            "context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("wake_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("finished_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_automation_run_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_pk"],
            ["event.id"],
            name=op.f("fk_automation_run_event_pk_event"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["version_pk"],
            ["automation_version.id"],
            name=op.f("fk_automation_run_version_pk_automation_version"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_automation_run_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_run")),
        sa.UniqueConstraint("run_id", name=op.f("uq_automation_run_run_id")),
    )
    with op.batch_alter_table("automation_run", schema=None) as batch_op:
        batch_op.create_index(
            "ix_automation_run_automation", ["environment_id", "automation_id", "id"], unique=False
        )
        batch_op.create_index("ix_automation_run_due", ["status", "wake_at"], unique=False)
        batch_op.create_index("ix_automation_run_event", ["event_pk"], unique=False)
        batch_op.create_index("ix_automation_run_listing", ["environment_id", "id"], unique=False)
        batch_op.create_index(
            "ix_automation_run_recipient", ["environment_id", "recipient", "id"], unique=False
        )
        batch_op.create_index(
            "ix_automation_run_token",
            ["environment_id", "cancelation_token", "status"],
            unique=False,
        )

    op.create_table(
        "automation_run_step",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("run_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("ref", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column(
            "output",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("finished_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["automation_run.id"],
            name=op.f("fk_automation_run_step_run_pk_automation_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_run_step")),
        sa.UniqueConstraint(
            "run_pk", "position", name=op.f("uq_automation_run_step_run_pk_position")
        ),
    )


def downgrade() -> None:
    op.drop_table("automation_run_step")
    with op.batch_alter_table("automation_run", schema=None) as batch_op:
        batch_op.drop_index("ix_automation_run_token")
        batch_op.drop_index("ix_automation_run_recipient")
        batch_op.drop_index("ix_automation_run_listing")
        batch_op.drop_index("ix_automation_run_event")
        batch_op.drop_index("ix_automation_run_due")
        batch_op.drop_index("ix_automation_run_automation")

    op.drop_table("automation_run")
