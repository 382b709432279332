"""automation_replay and automation_replay_event: replays run on a background process

Revision ID: b8e3f1a6c2d9
Revises: a7d2e4f9b1c3
Create Date: 2026-12-06 15:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b8e3f1a6c2d9"
down_revision: str | None = "a7d2e4f9b1c3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")
KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "automation_replay",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("replay_id", sa.String(length=40), nullable=False),
        sa.Column("automation_id", sa.String(length=300), nullable=False),
        sa.Column("label", sa.String(length=40), nullable=False),
        sa.Column("definition", JSON, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_limit", sa.Integer(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("events_total", sa.Integer(), nullable=True),
        sa.Column("events_done", sa.Integer(), nullable=False),
        sa.Column("truncated", sa.Boolean(), nullable=False),
        sa.Column("result", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_automation_replay_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_automation_replay_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_replay")),
        sa.UniqueConstraint(
            "environment_id",
            "replay_id",
            name=op.f("uq_automation_replay_environment_id_replay_id"),
        ),
    )
    op.create_index(
        "ix_automation_replay_listing",
        "automation_replay",
        ["environment_id", "automation_id", "id"],
        unique=False,
    )
    op.create_index(
        "ix_automation_replay_status",
        "automation_replay",
        ["status", "lease_until"],
        unique=False,
    )
    op.create_table(
        "automation_replay_event",
        sa.Column("replay_pk", KEY, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("user_id", sa.String(length=300), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("change", sa.String(length=10), nullable=False),
        sa.Column("runs", JSON, nullable=False),
        sa.Column("messages", JSON, nullable=False),
        sa.Column("before", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["replay_pk"],
            ["automation_replay.id"],
            name=op.f("fk_automation_replay_event_replay_pk_automation_replay"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("replay_pk", "position", name=op.f("pk_automation_replay_event")),
    )
    op.create_index(
        "ix_automation_replay_event_change",
        "automation_replay_event",
        ["replay_pk", "change", "position"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_automation_replay_event_change", table_name="automation_replay_event")
    op.drop_table("automation_replay_event")
    op.drop_index("ix_automation_replay_status", table_name="automation_replay")
    op.drop_index("ix_automation_replay_listing", table_name="automation_replay")
    op.drop_table("automation_replay")
