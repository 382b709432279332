"""inbox messages

Revision ID: 037c40ff5dbd
Revises: af19aca4e348
Create Date: 2026-11-28 15:14:31.924692
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.models.base

revision: str = "037c40ff5dbd"
down_revision: str | None = "af19aca4e348"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "inbox_message",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=300), nullable=False),
        sa.Column("message_id", sa.String(length=60), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("action_url", sa.Text(), nullable=True),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("read_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("archived_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_inbox_message_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_inbox_message_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox_message")),
        sa.UniqueConstraint(
            "environment_id", "message_id", name=op.f("uq_inbox_message_environment_id_message_id")
        ),
    )
    with op.batch_alter_table("inbox_message", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inbox_message_unread",
            ["environment_id", "user_id"],
            unique=False,
            postgresql_where=sa.text("read_at IS NULL AND archived_at IS NULL"),
            sqlite_where=sa.text("read_at IS NULL AND archived_at IS NULL"),
        )
        batch_op.create_index(
            "ix_inbox_message_user", ["environment_id", "user_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("inbox_message", schema=None) as batch_op:
        batch_op.drop_index("ix_inbox_message_user")
        batch_op.drop_index(
            "ix_inbox_message_unread",
            postgresql_where=sa.text("read_at IS NULL AND archived_at IS NULL"),
            sqlite_where=sa.text("read_at IS NULL AND archived_at IS NULL"),
        )

    op.drop_table("inbox_message")
