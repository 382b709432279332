"""notifications messages providers lists preferences

Revision ID: af19aca4e348
Revises: 771bc5e24b35
Create Date: 2026-11-28 15:05:49.997845
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import tidings.models.base

revision: str = "af19aca4e348"
down_revision: str | None = "771bc5e24b35"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_record",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column(
            "body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("expires_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_idempotency_record_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_record")),
        sa.UniqueConstraint(
            "environment_id", "key", name=op.f("uq_idempotency_record_environment_id_key")
        ),
    )
    op.create_table(
        "list_subscription",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("list_id", sa.String(length=300), nullable=False),
        sa.Column("user_id", sa.String(length=300), nullable=False),
        sa.Column(
            "preferences",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_list_subscription_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_list_subscription_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_subscription")),
        sa.UniqueConstraint(
            "environment_id",
            "list_id",
            "user_id",
            name=op.f("uq_list_subscription_environment_id_list_id_user_id"),
        ),
    )
    with op.batch_alter_table("list_subscription", schema=None) as batch_op:
        batch_op.create_index(
            "ix_list_subscription_user", ["environment_id", "user_id"], unique=False
        )

    op.create_table(
        "message",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("message_id", sa.String(length=60), nullable=False),
        sa.Column("request_id", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=60), nullable=True),
        sa.Column("reason_detail", sa.Text(), nullable=True),
        sa.Column("recipient", sa.String(length=300), nullable=True),
        sa.Column(
            "to",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("notification_id", sa.String(length=200), nullable=True),
        sa.Column(
            "content",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "routing",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "channels",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "providers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "tags",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("trace_id", sa.String(length=200), nullable=True),
        sa.Column(
            "output",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "source",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("send_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("expires_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("timeout_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("enqueued_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("routed_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("sent_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("delivered_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_message_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_message_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message")),
        sa.UniqueConstraint("message_id", name=op.f("uq_message_message_id")),
    )
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.create_index("ix_message_listing", ["environment_id", "id"], unique=False)
        batch_op.create_index(
            "ix_message_notification", ["environment_id", "notification_id", "id"], unique=False
        )
        batch_op.create_index(
            "ix_message_recipient", ["environment_id", "recipient", "id"], unique=False
        )
        batch_op.create_index("ix_message_request", ["environment_id", "request_id"], unique=False)
        batch_op.create_index("ix_message_status", ["environment_id", "status", "id"], unique=False)
        batch_op.create_index(
            "ix_message_trace", ["environment_id", "trace_id", "id"], unique=False
        )

    op.create_table(
        "notification",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("notification_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column(
            "content",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "routing",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("strict", sa.Boolean(), nullable=False),
        sa.Column("topic_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_notification_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_notification_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification")),
        sa.UniqueConstraint(
            "environment_id",
            "notification_id",
            name=op.f("uq_notification_environment_id_notification_id"),
        ),
    )
    op.create_table(
        "provider_configuration",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("config_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_provider_configuration_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_provider_configuration_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_provider_configuration")),
        sa.UniqueConstraint(
            "environment_id", "name", name=op.f("uq_provider_configuration_environment_id_name")
        ),
    )
    op.create_table(
        "recipient_list",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("list_id", sa.String(length=300), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_recipient_list_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_recipient_list_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recipient_list")),
        sa.UniqueConstraint(
            "environment_id", "list_id", name=op.f("uq_recipient_list_environment_id_list_id")
        ),
    )
    op.create_table(
        "subscription_topic",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("topic_id", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("default_status", sa.String(length=20), nullable=False),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_subscription_topic_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_subscription_topic_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_topic")),
        sa.UniqueConstraint(
            "environment_id", "topic_id", name=op.f("uq_subscription_topic_environment_id_topic_id")
        ),
    )
    op.create_table(
        "user_preference",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("workspace_id", sa.String(length=40), nullable=False),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=300), nullable=False),
        sa.Column("topic_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("has_custom_routing", sa.Boolean(), nullable=False),
        sa.Column(
            "custom_routing",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_user_preference_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["workspace_id"],
            ["workspace.id"],
            name=op.f("fk_user_preference_workspace_id_workspace"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_preference")),
        sa.UniqueConstraint(
            "environment_id",
            "user_id",
            "topic_id",
            name=op.f("uq_user_preference_environment_id_user_id_topic_id"),
        ),
    )
    op.create_table(
        "message_delivery",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "message_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("environment_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column(
            "providers",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("provider_index", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("provider_attempts", sa.Integer(), nullable=False),
        sa.Column("provider_started_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("sending_since", tidings.models.base.UTCDateTime(), nullable=True),
        sa.Column("provider_message_id", sa.String(length=300), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment_id"],
            ["environment.id"],
            name=op.f("fk_message_delivery_environment_id_environment"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["message.id"],
            name=op.f("fk_message_delivery_message_pk_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_delivery")),
    )
    with op.batch_alter_table("message_delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_message_delivery_due", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index("ix_message_delivery_message", ["message_pk"], unique=False)
        batch_op.create_index(
            "ix_message_delivery_provider_id", ["provider", "provider_message_id"], unique=False
        )

    op.create_table(
        "message_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "message_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("created_at", tidings.models.base.UTCDateTime(), nullable=False),
        sa.Column(
            "data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["message.id"],
            name=op.f("fk_message_event_message_pk_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_message_event")),
    )
    with op.batch_alter_table("message_event", schema=None) as batch_op:
        batch_op.create_index("ix_message_event_message", ["message_pk", "id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("message_event", schema=None) as batch_op:
        batch_op.drop_index("ix_message_event_message")

    op.drop_table("message_event")
    with op.batch_alter_table("message_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_message_delivery_provider_id")
        batch_op.drop_index("ix_message_delivery_message")
        batch_op.drop_index("ix_message_delivery_due")

    op.drop_table("message_delivery")
    op.drop_table("user_preference")
    op.drop_table("subscription_topic")
    op.drop_table("recipient_list")
    op.drop_table("provider_configuration")
    op.drop_table("notification")
    with op.batch_alter_table("message", schema=None) as batch_op:
        batch_op.drop_index("ix_message_trace")
        batch_op.drop_index("ix_message_status")
        batch_op.drop_index("ix_message_request")
        batch_op.drop_index("ix_message_recipient")
        batch_op.drop_index("ix_message_notification")
        batch_op.drop_index("ix_message_listing")

    op.drop_table("message")
    with op.batch_alter_table("list_subscription", schema=None) as batch_op:
        batch_op.drop_index("ix_list_subscription_user")

    op.drop_table("list_subscription")
    op.drop_table("idempotency_record")
