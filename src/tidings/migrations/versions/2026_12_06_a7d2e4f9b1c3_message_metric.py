"""message_metric: hourly and daily rollup of sends, feedback, engagement and unsubscribes

Revision ID: a7d2e4f9b1c3
Revises: f3b8d1c6a2e9
Create Date: 2026-12-06 14:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7d2e4f9b1c3"
down_revision: str | None = "f3b8d1c6a2e9"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "message_metric",
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("span", sa.String(length=4), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("template", sa.String(length=200), nullable=False),
        sa.Column("automation", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_message_metric_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "environment_id",
            "span",
            "bucket_start",
            "template",
            "automation",
            "channel",
            "metric",
            name=op.f("pk_message_metric"),
        ),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_message_metric_template",
        "message_metric",
        ["environment_id", "span", "template", "bucket_start"],
        unique=False,
    )
    op.create_index(
        "ix_message_metric_automation",
        "message_metric",
        ["environment_id", "span", "automation", "bucket_start"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_message_metric_automation", table_name="message_metric")
    op.drop_index("ix_message_metric_template", table_name="message_metric")
    op.drop_table("message_metric")
