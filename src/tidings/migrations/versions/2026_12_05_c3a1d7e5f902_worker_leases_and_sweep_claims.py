"""worker leases, the owner of a sending delivery or a run's request, and sweep claims

Revision ID: c3a1d7e5f902
Revises: 3a7d2c91e4b8
Create Date: 2026-12-05 20:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.models.base

revision: str = "c3a1d7e5f902"
down_revision: str | None = "3a7d2c91e4b8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SWEPT = ("event", "message", "message_delivery", "automation_run")
OWNED = ("message_delivery", "automation_run")


def upgrade() -> None:
    op.create_table(
        "worker_lease",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("heartbeat_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_worker_lease")),
    )
    for table in OWNED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("owner", sa.String(length=40), nullable=True))
    for table in SWEPT:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(
                sa.Column("swept_at", tidings.models.base.UTCDateTime(), nullable=True)
            )


def downgrade() -> None:
    for table in SWEPT:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("swept_at")
    for table in OWNED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("owner")
    op.drop_table("worker_lease")
