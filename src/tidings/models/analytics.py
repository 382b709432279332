from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from tidings.models.base import Base, UTCDateTime


class Metric:
    """What `message_metric` counts (docs/deliverability.md, "Metrics")."""

    SENT = "sent"
    DELIVERED = "delivered"
    BOUNCED = "bounced"
    COMPLAINED = "complained"
    OPENED = "opened"
    CLICKED = "clicked"
    UNSUBSCRIBED = "unsubscribed"

    ALL = (SENT, DELIVERED, BOUNCED, COMPLAINED, OPENED, CLICKED, UNSUBSCRIBED)


class MetricSpan:
    """The length of a `message_metric` bucket: each transition is counted in both."""

    HOUR = "hour"
    DAY = "day"


class MessageMetric(Base):
    """A rollup of messages' transitions: how many of `metric` happened in the hour (or the
    UTC day: `span`) starting at `bucket_start`, for one template, automation and channel of
    an environment. Incremented (one upsert of the hour's and the day's rows) in the
    transaction of each transition it counts, so that reading a period reads at most
    buckets x templates x automations x channels x metrics rows, whatever the number of
    messages. `template` and `automation` are "" for none."""

    __tablename__ = "message_metric"
    __table_args__ = (
        Index("ix_message_metric_template", "environment_id", "span", "template", "bucket_start"),
        Index(
            "ix_message_metric_automation",
            "environment_id",
            "span",
            "automation",
            "bucket_start",
        ),
        # On SQLite the rows are stored in the primary key's order, counts included: a
        # period is one contiguous range of the table, read without a lookup per row.
        {"sqlite_with_rowid": False},
    )

    environment_id: Mapped[str] = mapped_column(
        ForeignKey("environment.id", ondelete="CASCADE"), primary_key=True
    )
    span: Mapped[str] = mapped_column(String(4), primary_key=True)
    bucket_start: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    template: Mapped[str] = mapped_column(String(200), primary_key=True)
    automation: Mapped[str] = mapped_column(String(200), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    metric: Mapped[str] = mapped_column(String(20), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
