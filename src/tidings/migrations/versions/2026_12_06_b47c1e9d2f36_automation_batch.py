"""automation_batch: the open batches of batch steps, and the runs' items in them

Revision ID: b47c1e9d2f36
Revises: 5e2b7c4d9a10
Create Date: 2026-12-06 09:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.models.base

revision: str = "b47c1e9d2f36"
down_revision: str | None = "5e2b7c4d9a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# JSONB on Postgres, as the models' JSONValue.
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "automation_batch",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("automation_id", sa.String(length=200), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=300), nullable=False),
        sa.Column("batch_key", sa.String(length=1000), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("opener_run_pk", KEY, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("opened_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("closes_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("closes_by", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_automation_batch_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["opener_run_pk"],
            ["automation_run.id"],
            name=op.f("fk_automation_batch_opener_run_pk_automation_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_batch")),
        sa.UniqueConstraint(
            "opener_run_pk", "position", name=op.f("uq_automation_batch_opener_run_pk_position")
        ),
    )
    op.create_index(
        "uq_automation_batch_open",
        "automation_batch",
        ["environment_id", "key_hash"],
        unique=True,
        postgresql_where=sa.text("status = 'open'"),
        sqlite_where=sa.text("status = 'open'"),
    )
    op.create_table(
        "automation_batch_item",
        sa.Column("id", KEY, autoincrement=True, nullable=False),
        sa.Column("batch_pk", KEY, nullable=False),
        sa.Column("run_pk", KEY, nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("added_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_pk"],
            ["automation_batch.id"],
            name=op.f("fk_automation_batch_item_batch_pk_automation_batch"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_pk"],
            ["automation_run.id"],
            name=op.f("fk_automation_batch_item_run_pk_automation_run"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_batch_item")),
        sa.UniqueConstraint(
            "batch_pk", "ordinal", name=op.f("uq_automation_batch_item_batch_pk_ordinal")
        ),
    )


def downgrade() -> None:
    op.drop_table("automation_batch_item")
    op.drop_index("uq_automation_batch_open", table_name="automation_batch")
    op.drop_table("automation_batch")
