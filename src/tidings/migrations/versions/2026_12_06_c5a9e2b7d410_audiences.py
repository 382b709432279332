"""audiences: definitions, members and their re-checks

Revision ID: c5a9e2b7d410
Revises: d8e3f1a4c6b2
Create Date: 2026-12-06 11:52:49.142959
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.models.base

revision: str = "c5a9e2b7d410"
down_revision: str | None = "d8e3f1a4c6b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# JSONB on Postgres, as the models' JSONValue.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "audience",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("audience_id", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("description", sa.String(length=2000), nullable=True),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scan_version", sa.Integer(), nullable=False),
        sa.Column("scan_after", sa.String(length=300), nullable=True),
        sa.Column("scanned", sa.Integer(), nullable=False),
        sa.Column("scan_total", sa.Integer(), nullable=False),
        sa.Column("scan_started_at", tidings.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column(
            "scan_finished_at", tidings.models.base.UTCDateTime(timezone=True), nullable=True
        ),
        sa.Column("created_at", tidings.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_audience_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_audience_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience")),
        sa.UniqueConstraint(
            "environment_id", "audience_id", name=op.f("uq_audience_environment_id_audience_id")
        ),
    )
    op.create_table(
        "audience_check",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column(
            "audience_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.String(length=300), nullable=False),
        sa.Column("check_at", tidings.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_pk"],
            ["audience.id"],
            name=op.f("fk_audience_check_audience_pk_audience"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_audience_check_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_check")),
        sa.UniqueConstraint(
            "audience_pk", "user_id", name=op.f("uq_audience_check_audience_pk_user_id")
        ),
    )
    with op.batch_alter_table("audience_check", schema=None) as batch_op:
        batch_op.create_index("ix_audience_check_due", ["check_at"], unique=False)

    op.create_table(
        "audience_member",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column(
            "audience_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.String(length=300), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("entered_at", tidings.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("left_at", tidings.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("changed_at", tidings.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["audience_pk"],
            ["audience.id"],
            name=op.f("fk_audience_member_audience_pk_audience"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_audience_member_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audience_member")),
    )
    with op.batch_alter_table("audience_member", schema=None) as batch_op:
        batch_op.create_index(
            "ix_audience_member_changes", ["audience_pk", "changed_at"], unique=False
        )
        batch_op.create_index(
            "ix_audience_member_current",
            ["audience_pk", "user_id"],
            unique=True,
            sqlite_where=sa.text("left_at IS NULL"),
            postgresql_where=sa.text("left_at IS NULL"),
        )
        batch_op.create_index(
            "ix_audience_member_page",
            ["audience_pk", "id"],
            unique=False,
            sqlite_where=sa.text("left_at IS NULL"),
            postgresql_where=sa.text("left_at IS NULL"),
        )
        batch_op.create_index(
            "ix_audience_member_user", ["environment_id", "user_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("audience_member", schema=None) as batch_op:
        batch_op.drop_index("ix_audience_member_user")
        batch_op.drop_index(
            "ix_audience_member_page",
            sqlite_where=sa.text("left_at IS NULL"),
            postgresql_where=sa.text("left_at IS NULL"),
        )
        batch_op.drop_index(
            "ix_audience_member_current",
            sqlite_where=sa.text("left_at IS NULL"),
            postgresql_where=sa.text("left_at IS NULL"),
        )
        batch_op.drop_index("ix_audience_member_changes")

    op.drop_table("audience_member")
    with op.batch_alter_table("audience_check", schema=None) as batch_op:
        batch_op.drop_index("ix_audience_check_due")

    op.drop_table("audience_check")
    op.drop_table("audience")
