"""identity: anonymous profiles, trait times, aliases

Revision ID: 81ef99442833
Revises: 486bfd0afc23
Create Date: 2026-12-01 14:57:19.270140
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.models.base

revision: str = "81ef99442833"
down_revision: str | None = "486bfd0afc23"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "profile_alias",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("alias_id", sa.String(length=300), nullable=False),
        sa.Column("user_id", sa.String(length=300), nullable=False),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_profile_alias_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_alias")),
        sa.UniqueConstraint(
            "environment_id", "alias_id", name=op.f("uq_profile_alias_environment_id_alias_id")
        ),
    )
    with op.batch_alter_table("profile_alias", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_profile_alias_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("anonymous", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(
            sa.Column(
                "trait_times",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=True,
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("profile", schema=None) as batch_op:
        batch_op.drop_column("trait_times")
        batch_op.drop_column("anonymous")

    with op.batch_alter_table("profile_alias", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_profile_alias_user_id"))

    op.drop_table("profile_alias")
