"""Every query on message_metric: the one-statement increments of the transitions it counts,
and the reads of a period."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from tidings.kit.sql import DriverStatement, Repository
from tidings.models import Message, MessageMetric, MetricSpan
from tidings.models.base import UTCDateTime

_KEY = (
    "environment_id",
    "span",
    "bucket_start",
    "template",
    "automation",
    "channel",
    "metric",
)


def hour_of(at: datetime) -> datetime:
    """The start of the hour `at` falls in: its hourly bucket."""
    return at.replace(minute=0, second=0, microsecond=0)


def day_of(at: datetime) -> datetime:
    """The start of the UTC day `at` falls in: its daily bucket."""
    return hour_of(at).replace(hour=0)


def dimensions(message: Message) -> tuple[str, str]:
    """The message's template and automation as the rollup keys them ("" for none): the same
    values as `_COUNT_DELIVERY` reads in SQL."""
    automation = message.source.get("automation_id")
    return message.notification_id or "", automation if isinstance(automation, str) else ""


# One transition of a delivery, counted by its id in the send path's own fixed statements
# (MessageRepository.record_sent): the template and automation are read from the message (by
# primary key), the channel from the delivery, and the hour's and the day's rows are inserted
# or incremented: one statement, two searches of message_metric's primary key. `->>` reads a
# JSON member on SQLite (3.38+) and on Postgres (jsonb).
_COUNT_DELIVERY = DriverStatement.text(
    "INSERT INTO message_metric (environment_id, span, bucket_start, template, automation,"
    " channel, metric, count)"
    " SELECT m.environment_id, b.span, b.bucket_start, COALESCE(m.notification_id, ''),"
    " COALESCE(m.source ->> 'automation_id', ''), d.channel, :metric, 1"
    " FROM message_delivery d JOIN message m ON m.id = d.message_pk"
    f" CROSS JOIN (SELECT '{MetricSpan.HOUR}' AS span, :hour AS bucket_start"
    f" UNION ALL SELECT '{MetricSpan.DAY}', :day) b"
    " WHERE d.id = :delivery_id"
    f" ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET count = message_metric.count + 1",
    hour=UTCDateTime(),
    day=UTCDateTime(),
)


def count_delivery_on_cursor(
    cursor: Any, dialect: Dialect, delivery_id: int, metric: str, at: datetime
) -> None:
    """Count one `metric` of the delivery at `at`, with the caller's transaction."""
    _COUNT_DELIVERY.execute(
        cursor, dialect, hour=hour_of(at), day=day_of(at), metric=metric, delivery_id=delivery_id
    )


class MetricRepository(Repository):
    def count(
        self,
        environment_id: str,
        at: datetime,
        template: str,
        automation: str,
        channel: str,
        metric: str,
    ) -> None:
        """Add one to the hour's and the day's rows of these keys (one upsert)."""
        dialect = self.session.get_bind().dialect
        values = [
            {
                "environment_id": environment_id,
                "span": span,
                "bucket_start": bucket,
                "template": template,
                "automation": automation,
                "channel": channel,
                "metric": metric,
                "count": 1,
            }
            for span, bucket in ((MetricSpan.HOUR, hour_of(at)), (MetricSpan.DAY, day_of(at)))
        ]
        insert: Any = postgresql.insert if dialect.name == "postgresql" else sqlite.insert
        statement = insert(MessageMetric).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=list(_KEY),
            set_={"count": MessageMetric.count + statement.excluded.count},
        )
        self.session.execute(statement)

    def buckets(
        self,
        environment_id: str,
        span: str,
        start: datetime,
        end: datetime,
        *,
        template: str | None,
        automation: str | None,
        channel: str | None,
    ) -> Sequence[tuple[datetime, str, int]]:
        """The sums of each metric per bucket of `span` (hour or day) in [start, end), with
        the filters given (None: all): one range read of the primary key (or of the
        template's or automation's index) and a group per bucket and metric."""
        query = select(
            MessageMetric.bucket_start, MessageMetric.metric, func.sum(MessageMetric.count)
        ).where(
            MessageMetric.environment_id == environment_id,
            MessageMetric.span == span,
            MessageMetric.bucket_start >= start,
            MessageMetric.bucket_start < end,
        )
        if template is not None:
            query = query.where(MessageMetric.template == template)
        if automation is not None:
            query = query.where(MessageMetric.automation == automation)
        if channel is not None:
            query = query.where(MessageMetric.channel == channel)
        query = query.group_by(MessageMetric.bucket_start, MessageMetric.metric).order_by(
            MessageMetric.bucket_start
        )
        return [(row[0], row[1], int(row[2])) for row in self.session.execute(query)]

    def keys_seen(
        self, environment_id: str, start: datetime, end: datetime, limit: int
    ) -> tuple[list[str], list[str]]:
        """The templates and automations with counts in the days of [start, end) (up to
        `limit` each), for filter choices."""
        found: list[list[str]] = []
        for column in (MessageMetric.template, MessageMetric.automation):
            rows = self.session.scalars(
                select(column)
                .where(
                    MessageMetric.environment_id == environment_id,
                    MessageMetric.span == MetricSpan.DAY,
                    MessageMetric.bucket_start >= day_of(start),
                    MessageMetric.bucket_start < end,
                    column != "",
                )
                .distinct()
                .order_by(column)
                .limit(limit)
            )
            found.append(list(rows))
        return found[0], found[1]
