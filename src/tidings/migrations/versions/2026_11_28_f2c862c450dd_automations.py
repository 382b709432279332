"""automations

Revision ID: f2c862c450dd
Revises: 037c40ff5dbd
Create Date: 2026-11-28 15:57:23.233205
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.models.base

revision: str = "f2c862c450dd"
down_revision: str | None = "037c40ff5dbd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "automation",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("automation_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_automation_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_automation_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation")),
        sa.UniqueConstraint(
            "environment_id",
            "automation_id",
            name=op.f("uq_automation_environment_id_automation_id"),
        ),
    )
    op.create_table(
        "automation_trigger",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "automation_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("event", sa.String(length=300), nullable=False),
        sa.ForeignKeyConstraint(
            ["automation_pk"],
            ["automation.id"],
            name=op.f("fk_automation_trigger_automation_pk_automation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_automation_trigger_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_trigger")),
        sa.UniqueConstraint(
            "automation_pk",
            "source",
            "event",
            name=op.f("uq_automation_trigger_automation_pk_source_event"),
        ),
    )
    with op.batch_alter_table("automation_trigger", schema=None) as batch_op:
        batch_op.create_index(
            "ix_automation_trigger_event", ["environment_id", "source", "event"], unique=False
        )

    op.create_table(
        "automation_version",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "automation_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "definition",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["automation_pk"],
            ["automation.id"],
            name=op.f("fk_automation_version_automation_pk_automation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_automation_version_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_version")),
        sa.UniqueConstraint(
            "automation_pk", "version", name=op.f("uq_automation_version_automation_pk_version")
        ),
    )


def downgrade() -> None:
    op.drop_table("automation_version")
    with op.batch_alter_table("automation_trigger", schema=None) as batch_op:
        batch_op.drop_index("ix_automation_trigger_event")

    op.drop_table("automation_trigger")
    op.drop_table("automation")
