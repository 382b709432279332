"""Every query on webhook_endpoint, webhook_subscription and webhook_delivery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.engine import Dialect

from tidings.config import Settings
from tidings.kit.sql import DriverStatement, Repository
from tidings.models import (
    WebhookDelivery,
    WebhookDeliveryStatus,
    WebhookEndpoint,
    WebhookSubscription,
)
from tidings.models.base import UTCDateTime
from tidings.webhook_out.events import Emission
from tidings.worker.repository import AttemptTable

# An attempt `sending` for longer than this has nobody to finish it (its process died, or
# lost it): the sweeper re-drives it. An attempt takes at most a few timeouts (connect,
# write, read).
SENDING_STALE_SECONDS = 120.0

# The deliveries of one event: a row for each enabled endpoint of the environment subscribed
# to the event's type, in one statement on webhook_subscription's primary key (environment,
# event type). With no endpoint registered it reads one index page and writes nothing. It
# runs on a DB-API cursor: in the send path's own fixed statements (record_sent), and in
# an ORM unit of work on its connection.
_EMIT = DriverStatement.text(
    "INSERT INTO webhook_delivery (workspace_id, environment_id, endpoint_id, event_id,"
    " event_type, body, status, attempts, created_at, updated_at)"
    " SELECT e.workspace_id, e.environment_id, e.id, :event_id, :event_type, :body,"
    f" '{WebhookDeliveryStatus.PENDING}', 0, :now, :now"
    " FROM webhook_subscription s JOIN webhook_endpoint e ON e.id = s.endpoint_id"
    " WHERE s.environment_id = :environment_id AND s.event_type = :subscribed_type"
    " AND e.enabled"
    " RETURNING id",
    now=UTCDateTime(),
)


def emit_on_cursor(cursor: Any, dialect: Dialect, emission: Emission, now: datetime) -> list[int]:
    """Insert the event's deliveries with the caller's transaction; their ids."""
    event_id, body = emission.body(now)
    rows = _EMIT.rows(
        cursor,
        dialect,
        event_id=event_id,
        event_type=emission.event_type,
        body=body,
        now=now,
        environment_id=emission.environment_id,
        # The same value as `event_type`, under a name of its own: Postgres deduces one
        # type per parameter, and the two places want text and varchar.
        subscribed_type=emission.event_type,
    )
    return sorted(row[0] for row in rows)


# An outbound webhook delivery `sending` for longer than SENDING_STALE_SECONDS counts as
# lost, even when its owner is alive.
WEBHOOK_ATTEMPTS = AttemptTable(
    WebhookDelivery,
    WebhookDeliveryStatus.SENDING,
    WebhookDeliveryStatus.PENDING,
    stale_seconds=lambda _: SENDING_STALE_SECONDS,
)


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    """Which deliveries a log lists: one endpoint's, in one status, of one event type; None
    matches any."""

    endpoint_id: str | None = None
    status: str | None = None
    event_type: str | None = None


class WebhookRepository(Repository):
    # -- endpoints ---------------------------------------------------------------------------

    def add_endpoint(self, row: WebhookEndpoint) -> None:
        self.session.add(row)
        self.session.flush()
        self.subscribe(row)

    def subscribe(self, row: WebhookEndpoint) -> None:
        """Make the endpoint's subscription rows its `event_types`."""
        self.session.execute(
            delete(WebhookSubscription).where(WebhookSubscription.endpoint_id == row.id)
        )
        self.session.add_all(
            WebhookSubscription(
                environment_id=row.environment_id, event_type=event_type, endpoint_id=row.id
            )
            for event_type in row.event_types
        )
        self.session.flush()

    def endpoints(self, environment_id: str) -> Sequence[WebhookEndpoint]:
        return self.find_rows(
            WebhookEndpoint,
            order_by=(WebhookEndpoint.created_at, WebhookEndpoint.id),
            environment_id=environment_id,
        )

    def count_endpoints(self, environment_id: str) -> int:
        return self.count_rows(WebhookEndpoint, WebhookEndpoint.environment_id == environment_id)

    def endpoint(
        self, environment_id: str, endpoint_id: str, *, lock: bool = False
    ) -> WebhookEndpoint | None:
        query = select(WebhookEndpoint).where(
            WebhookEndpoint.environment_id == environment_id, WebhookEndpoint.id == endpoint_id
        )
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).first()

    def endpoint_by_id(self, endpoint_id: str) -> WebhookEndpoint | None:
        return self.session.get(WebhookEndpoint, endpoint_id)

    def delete_endpoint(self, row: WebhookEndpoint) -> None:
        """The endpoint, its subscriptions and its deliveries (ON DELETE CASCADE)."""
        self.session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == row.id))

    # -- deliveries --------------------------------------------------------------------------

    def emit(self, emission: Emission, now: datetime) -> list[int]:
        """`emit_on_cursor` in this unit of work."""
        connection = self.session.connection()
        cursor = connection.connection.cursor()
        try:
            return emit_on_cursor(cursor, connection.dialect, emission, now)
        finally:
            cursor.close()

    def add_delivery(self, row: WebhookDelivery) -> None:
        self.session.add(row)
        self.session.flush()

    def delivery(self, environment_id: str, delivery_id: int) -> WebhookDelivery | None:
        return self.find_row(WebhookDelivery, environment_id=environment_id, id=delivery_id)

    def lock_delivery(self, delivery_id: int) -> WebhookDelivery | None:
        return self.lock_row(WebhookDelivery, id=delivery_id)

    def is_orphaned(self, delivery_id: int, now: datetime, settings: Settings) -> bool:
        return WEBHOOK_ATTEMPTS.is_orphaned(self.session, delivery_id, now, settings)

    def deliveries_page(
        self, environment_id: str, where: DeliveryFilter, before_id: int | None, limit: int
    ) -> Sequence[WebhookDelivery]:
        """Newest first: up to `limit` deliveries that match `where`, with an id below
        `before_id`."""
        query = select(WebhookDelivery)
        if where.endpoint_id is not None:
            # The endpoint's index, (endpoint_id, id); the environment still filters.
            query = query.where(WebhookDelivery.endpoint_id == where.endpoint_id)
        query = query.where(WebhookDelivery.environment_id == environment_id)
        if where.status is not None:
            query = query.where(WebhookDelivery.status == where.status)
        if where.event_type is not None:
            query = query.where(WebhookDelivery.event_type == where.event_type)
        if before_id is not None:
            query = query.where(WebhookDelivery.id < before_id)
        return self.session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit)).all()
