"""signed sources

Revision ID: 486bfd0afc23
Revises: 9b79df1cf1ad
Create Date: 2026-12-01 14:48:55.128801
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import tidings.models.base

revision: str = "486bfd0afc23"
down_revision: str | None = "9b79df1cf1ad"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "signed_source",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("secrets_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("signature_failures", sa.Integer(), nullable=False),
        sa.Column("last_signature_failure_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_signed_source_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_signed_source_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signed_source")),
        sa.UniqueConstraint(
            "environment_id", "name", name=op.f("uq_signed_source_environment_id_name")
        ),
    )


def downgrade() -> None:
    op.drop_table("signed_source")
