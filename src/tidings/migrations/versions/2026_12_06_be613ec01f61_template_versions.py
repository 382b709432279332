"""template versions: `notification_version`, and who saved each automation version

Revision ID: be613ec01f61
Revises: c3a1d7e5f902
Create Date: 2026-12-06 06:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.models.base

revision: str = "be613ec01f61"
down_revision: str | None = "c3a1d7e5f902"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# JSONB on Postgres, as the models' JSONValue.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "notification_version",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "notification_pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("content", JSON, nullable=False),
        sa.Column("routing", JSON, nullable=True),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("topic_id", sa.String(length=200), nullable=True),
        sa.Column("saved_by", sa.String(length=320), nullable=True),
        sa.Column("restored_from", sa.Integer(), nullable=True),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["notification_pk"],
            ["notification.id"],
            name=op.f("fk_notification_version_notification_pk_notification"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_notification_version_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_version")),
        sa.UniqueConstraint(
            "notification_pk",
            "version",
            name=op.f("uq_notification_version_notification_pk_version"),
        ),
    )
    # Every template saved before history was kept starts it as version 1, by no one known.
    op.execute(
        "INSERT INTO notification_version (notification_pk, environment_id, version, name, "
        "content, routing, strict, topic_id, saved_by, restored_from, created_at) "
        "SELECT id, environment_id, 1, name, content, routing, strict, topic_id, NULL, NULL, "
        "updated_at FROM notification"
    )
    with op.batch_alter_table("automation_version") as batch_op:
        batch_op.add_column(sa.Column("saved_by", sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column("restored_from", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("automation_version") as batch_op:
        batch_op.drop_column("restored_from")
        batch_op.drop_column("saved_by")
    op.drop_table("notification_version")
