"""Every SQL query on messages, deliveries, history and idempotency records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Dialect,
    ScalarSelect,
    Select,
    Table,
    bindparam,
    case,
    delete,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.orm.attributes import set_committed_value

from tidings.analytics.repository import MetricRepository, count_delivery_on_cursor, dimensions
from tidings.config import Settings
from tidings.db import Database, Outbox
from tidings.kit.sql import (
    DriverStatement,
    Repository,
    claim_rows,
    execute_counting,
    insert_ignoring_conflicts,
)
from tidings.kit.time import utcnow
from tidings.models import (
    DeliveryStatus,
    Environment,
    IdempotencyRecord,
    Message,
    MessageDelivery,
    MessageEvent,
    MessageStatus,
    Metric,
    Notification,
)
from tidings.models.base import JSONValue, UTCDateTime
from tidings.webhook_out.events import Emission
from tidings.webhook_out.repository import emit_on_cursor
from tidings.worker.repository import AttemptTable


@dataclass(frozen=True, slots=True)
class SentReply:
    """A provider's answer to an attempt that succeeded, as its SENT history row keeps it."""

    provider: str
    channel: str
    provider_message_id: str | None
    response: str

    def history(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "provider": self.provider,
            "provider_message_id": self.provider_message_id,
            "response": self.response,
        }


Query = TypeVar("Query", bound=Select[*tuple[Any, ...]])


def _locked(query: Query) -> Query:
    """`query` locking its rows until the transaction ends, and reading them afresh over what
    the session holds (another transaction may have changed them since they were loaded)."""
    return query.with_for_update().execution_options(populate_existing=True)


_EVENT_TABLE = cast(Table, MessageEvent.__table__)
_DELIVERY_TABLE = cast(Table, MessageDelivery.__table__)

_MESSAGE_TABLE = cast(Table, Message.__table__)
_MARK_ROUTED = (
    update(_MESSAGE_TABLE)
    .where(_MESSAGE_TABLE.c.id == bindparam("routed_pk"))
    .values(
        status=MessageStatus.ROUTED,
        output=bindparam("routed_output", type_=JSONValue),
        routed_at=bindparam("routed_now", type_=UTCDateTime()),
        updated_at=bindparam("routed_now", type_=UTCDateTime()),
    )
)


# Matched to their rows by message_id: asking the INSERT to keep the rows' order makes
# SQLAlchemy insert them one by one on SQLite.
_INSERT_MESSAGES = insert(_MESSAGE_TABLE).returning(
    _MESSAGE_TABLE.c.message_id, _MESSAGE_TABLE.c.id
)
_INSERT_HISTORY = insert(_EVENT_TABLE)
_INSERT_DELIVERIES = insert(_DELIVERY_TABLE).returning(
    _DELIVERY_TABLE.c.id, _DELIVERY_TABLE.c.message_pk, _DELIVERY_TABLE.c.channel
)
_LOCK_MANY = _locked(
    select(Message)
    .where(Message.message_id.in_(bindparam("message_ids", expanding=True)))
    .order_by(Message.id)
)


@dataclass(frozen=True, slots=True)
class NewHistory:
    """A history entry of a message `add_messages` adds, named by its `message_id`."""

    message_id: str
    type: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class _PendingMessages:
    rows: list[dict[str, Any]]
    history: list[NewHistory]


# The messages added in a unit of work, not written yet (`add_messages`).
_PENDING = "tidings.messages_pending"


def _write_pending(session: Session) -> None:
    """Write the messages `add_messages` kept (before the commit)."""
    pending: _PendingMessages | None = session.info.pop(_PENDING, None)
    if pending is not None:
        _write(session, pending)


def _write(session: Session, messages: _PendingMessages) -> None:
    """Messages, then their history, in one multi-row INSERT each."""
    if not messages.rows:  # an audience with no members
        return
    connection = session.connection()
    ids: dict[str, int] = {
        message_id: pk for message_id, pk in connection.execute(_INSERT_MESSAGES, messages.rows)
    }
    now = utcnow()
    connection.execute(
        _INSERT_HISTORY,
        [
            {
                "message_pk": ids[entry.message_id],
                "type": entry.type,
                "created_at": now,
                "data": entry.data,
            }
            for entry in messages.history
        ],
    )


class MessageRepository(Repository):
    """Queries on messages, deliveries and history for one unit of work.

    With `batch_history`, history rows are kept and written together by `write_history()`
    (one multi-row INSERT), which the caller must call before its transaction commits.
    """

    def __init__(self, session: Session, *, batch_history: bool = False) -> None:
        super().__init__(session)
        self._history: list[dict[str, Any]] | None = [] if batch_history else None
        self._routed: list[dict[str, Any]] = []

    def add_messages(self, rows: list[dict[str, Any]], history: list[NewHistory]) -> None:
        """New messages (column name to value) and their first history entries, written
        just before the unit of work commits, with every other message it added: one
        multi-row INSERT for the messages and one for their history, without ORM objects.

        A group of events that each start a send then writes its messages together. Nothing
        in a unit of work reads back a message it has just added (its caller keeps the
        `message_id`), and a message points only at its workspace and environment.

        Under a savepoint they are written at once, so that rolling it back takes them back
        too."""
        if self.session.in_nested_transaction():
            _write(self.session, _PendingMessages(rows, history))
            return
        pending: _PendingMessages | None = self.session.info.get(_PENDING)
        if pending is None:
            pending = self.session.info[_PENDING] = _PendingMessages([], [])
            event.listen(self.session, "before_commit", _write_pending, once=True)
        pending.rows.extend(rows)
        pending.history.extend(history)

    def get(self, environment_id: str, message_id: str) -> Message | None:
        return self.find_row(Message, environment_id=environment_id, message_id=message_id)

    def latest_sent_of_topic(
        self, environment_id: str, user_id: str, topic_id: str
    ) -> Message | None:
        """The user's newest sent message of a template of the subscription topic: what a
        one-click unsubscribe from the topic is counted against (analytics.service). Read
        newest first along ix_message_recipient, the topic's templates by their key."""
        templates = select(Notification.notification_id).where(
            Notification.environment_id == environment_id, Notification.topic_id == topic_id
        )
        return self.session.scalars(
            select(Message)
            .where(
                Message.environment_id == environment_id,
                Message.recipient == user_id,
                Message.sent_at.is_not(None),
                Message.notification_id.in_(templates),
            )
            .order_by(Message.id.desc())
            .limit(1)
        ).first()

    def by_message_ids(self, environment_id: str, message_ids: list[str]) -> dict[str, Message]:
        if not message_ids:
            return {}
        rows = self.session.scalars(
            select(Message).where(
                Message.environment_id == environment_id, Message.message_id.in_(message_ids)
            )
        )
        return {row.message_id: row for row in rows}

    def channels_of(self, message_pks: list[int]) -> dict[int, list[str]]:
        """The channels each message has a delivery on (none before it is routed)."""
        found: dict[int, list[str]] = {pk: [] for pk in message_pks}
        if not message_pks:
            return found
        rows = self.session.execute(
            select(MessageDelivery.message_pk, MessageDelivery.channel)
            .where(MessageDelivery.message_pk.in_(message_pks))
            .order_by(MessageDelivery.id)
        )
        for message_pk, channel in rows:
            found[message_pk].append(channel)
        return found

    def lock(self, message_id: str) -> Message | None:
        return self.session.scalars(
            _locked(select(Message).where(Message.message_id == message_id))
        ).first()

    def lock_many(self, message_ids: list[str]) -> dict[str, Message]:
        rows = self.session.scalars(_LOCK_MANY, {"message_ids": message_ids})
        return {row.message_id: row for row in rows}

    def lock_by_pk(self, pk: int) -> Message | None:
        return self.session.scalars(_locked(select(Message).where(Message.id == pk))).first()

    def history(self, message: Message) -> Sequence[MessageEvent]:
        return self.find_rows(MessageEvent, order_by=(MessageEvent.id,), message_pk=message.id)

    def resent_as(self, message_pks: set[int], event_type: str) -> dict[int, str]:
        """The `message_id` of each message's `event_type` history entry (the resend that a
        RESENT entry names), by message primary key."""
        if not message_pks:
            return {}
        rows = self.session.execute(
            select(MessageEvent.message_pk, MessageEvent.data).where(
                MessageEvent.message_pk.in_(message_pks), MessageEvent.type == event_type
            )
        )
        return {pk: str(data.get("message_id")) for pk, data in rows}

    def record(self, message: Message, event_type: str, **data: Any) -> None:
        self.record_for(message.id, event_type, **data)

    def record_for(self, message_pk: int, event_type: str, **data: Any) -> None:
        if self._history is not None:
            self._history.append(
                {"message_pk": message_pk, "type": event_type, "created_at": utcnow(), "data": data}
            )
            return
        self.session.add(
            MessageEvent(message_pk=message_pk, type=event_type, created_at=utcnow(), data=data)
        )

    def write_history(self) -> None:
        """Write the history rows `record` kept (with `batch_history`), in their order."""
        if self._history:
            self.session.connection().execute(_INSERT_HISTORY, self._history)
            self._history = []

    def mark_routed(self, message: Message, output: dict[str, Any], now: datetime) -> None:
        """ROUTED with its rendered output, written with the other messages marked in this
        unit of work by `write_routed()` (one UPDATE executed for many rows) rather than by
        the ORM's flush; the loaded object shows the new values at once."""
        for name, value in (
            ("status", MessageStatus.ROUTED),
            ("output", output),
            ("routed_at", now),
            ("updated_at", now),
        ):
            set_committed_value(message, name, value)
        self._routed.append({"routed_pk": message.id, "routed_output": output, "routed_now": now})

    def write_routed(self) -> None:
        """Write what `mark_routed` kept; the caller calls it before its transaction commits."""
        if self._routed:
            self.session.connection().execute(_MARK_ROUTED, self._routed)
            self._routed = []

    def insert_deliveries(self, rows: list[dict[str, Any]]) -> list[int]:
        """New deliveries in one multi-row INSERT; their ids, in the order of `rows`.

        A message has at most one delivery per channel, so the ids are matched to the rows
        by (message, channel): asking the INSERT to keep the rows' order instead makes
        SQLAlchemy insert them one by one on SQLite.
        """
        if not rows:
            return []
        result = self.session.connection().execute(_INSERT_DELIVERIES, rows)
        ids = {(message_pk, channel): id_ for id_, message_pk, channel in result}
        return [ids[(row["message_pk"], row["channel"])] for row in rows]

    @classmethod
    def record_sent(
        cls,
        database: Database,
        delivery_id: int,
        message_pk: int,
        reply: SentReply,
        sent: Emission | None = None,
    ) -> str:
        """The SENT transition of one attempt, committed before this returns (on SQLite in
        one transaction with the outcomes other threads record at the same moment:
        `Database.write_driver`'s group commit); returns the delivery's status afterwards.

        A delivery still `sending` becomes `sent`, with its SENT history row, and its message
        SENT unless it already is SENT or DELIVERED. That is the common success, so it runs
        as three fixed statements on the driver's cursor (`Database.write_driver`), without
        reading the rows first. When the delivery is no longer `sending` (a delivery callback
        or a cancel got there first), those statements write nothing, and the reply is
        recorded under row locks instead (`_record_sent_locked`).

        `sent`, the `message.sent` outbound webhook event, is inserted with the transition
        (one more statement: webhook_out.repository.emit_on_cursor), and its deliveries are
        dispatched after the commit; before it, one more statement counts the send in the
        metrics rollup (analytics.repository.count_delivery_on_cursor).
        """
        dialect = database.engine.dialect
        hooks = database.write_driver(
            lambda cursor: _mark_sent(cursor, dialect, delivery_id, message_pk, reply, sent)
        )
        if hooks is not None:
            if hooks:
                database.dispatch(Outbox(webhooks=[(hook, None) for hook in hooks]))
            return DeliveryStatus.SENT
        with database.write() as (session, outbox):
            return cls(session)._record_sent_locked(delivery_id, reply, sent, outbox)

    def _record_sent_locked(
        self, delivery_id: int, reply: SentReply, sent: Emission | None, outbox: Outbox
    ) -> str:
        delivery = self.lock_delivery(delivery_id)
        assert delivery is not None
        message = self.lock_by_pk(delivery.message_pk)
        assert message is not None
        if delivery.status == DeliveryStatus.SENDING:
            # Another attempt of this delivery started meanwhile: the same transition.
            cursor = self.session.connection().connection.cursor()
            try:
                hooks = _mark_sent(
                    cursor, self.session.get_bind().dialect, delivery.id, message.id, reply, sent
                )
            finally:
                cursor.close()
            for hook in hooks or ():
                outbox.add_webhook(hook)
            return DeliveryStatus.SENT
        if delivery.status in DeliveryStatus.SETTLED:
            # A delivery callback got in first: its status stands, and the provider's reply
            # is still recorded.
            delivery.provider_message_id = delivery.provider_message_id or reply.provider_message_id
            late = replace(reply, channel=delivery.channel, provider=delivery.provider)
            self.record(message, "SENT", **late.history())
            now = utcnow()
            message.sent_at = message.sent_at or now
            template, automation = dimensions(message)
            MetricRepository(self.session).count(
                message.environment_id, now, template, automation, delivery.channel, Metric.SENT
            )
        return delivery.status

    def deliveries(self, message: Message) -> Sequence[MessageDelivery]:
        return self.session.scalars(_deliveries_of(message)).all()

    def lock_deliveries(self, message: Message) -> Sequence[MessageDelivery]:
        """A message's deliveries, locked in id order. Lock them before the message: the
        pipeline and the callbacks lock a delivery, then its message."""
        return self.session.scalars(_locked(_deliveries_of(message))).all()

    def lock_delivery(self, delivery_id: int) -> MessageDelivery | None:
        return self.session.scalars(
            _locked(select(MessageDelivery).where(MessageDelivery.id == delivery_id))
        ).first()

    def page(
        self,
        environment_id: str,
        *,
        before_id: int | None,
        limit: int,
        status: str | None = None,
        recipient: str | None = None,
        notification: str | None = None,
        tag: str | None = None,
        trace_id: str | None = None,
        after_id: int | None = None,
        enqueued_from: datetime | None = None,
        enqueued_to: datetime | None = None,
    ) -> Sequence[Message]:
        """Newest first, before `before_id` when given. With `after_id`, the `limit` messages
        just newer than it instead, oldest first (the page before, in a list read newest
        first). `enqueued_from` and `enqueued_to` bound the time enqueued, both included."""
        query = select(Message).where(Message.environment_id == environment_id)
        if status:
            query = query.where(Message.status == status)
        if recipient:
            query = query.where(Message.recipient == recipient)
        if notification:
            query = query.where(Message.notification_id == notification)
        if trace_id:
            query = query.where(Message.trace_id == trace_id)
        if enqueued_from is not None:
            query = query.where(Message.enqueued_at >= enqueued_from)
        if enqueued_to is not None:
            query = query.where(Message.enqueued_at <= enqueued_to)
        oldest_first = after_id is not None
        order = Message.id.asc() if oldest_first else Message.id.desc()

        def after(cursor: int | None) -> Select[Message]:
            if cursor is None:
                return query
            return query.where(Message.id > cursor if oldest_first else Message.id < cursor)

        start = after_id if oldest_first else before_id
        if not tag:
            return self.session.scalars(after(start).order_by(order).limit(limit)).all()
        # Tags live in a JSON list: filter them here, reading ahead page by page.
        found: list[Message] = []
        cursor = start
        while len(found) < limit:
            batch = self.session.scalars(after(cursor).order_by(order).limit(500)).all()
            if not batch:
                break
            found.extend(message for message in batch if tag in (message.tags or []))
            cursor = batch[-1].id
        return found[:limit]

    def backlog(self) -> tuple[int, datetime | None]:
        """How many messages are ENQUEUED, and when the oldest was: per environment through
        `ix_message_status` (environment, status, id), then the oldest rows' own times (the
        metrics scrape)."""
        environments = list(self.session.scalars(select(Environment.id)))
        if not environments:
            return 0, None
        rows = self.session.execute(
            select(func.count(), func.min(Message.id))
            .where(
                Message.environment_id.in_(environments),
                Message.status == MessageStatus.ENQUEUED,
            )
            .group_by(Message.environment_id)
        ).all()
        oldest = [row[1] for row in rows if row[1] is not None]
        first = (
            self.session.scalar(select(func.min(Message.enqueued_at)).where(Message.id.in_(oldest)))
            if oldest
            else None
        )
        return sum(int(row[0]) for row in rows), first

    def claim_due_messages(
        self, updated_before: datetime, unclaimed_since: datetime, now: datetime, limit: int
    ) -> list[tuple[int, str]]:
        """Claim messages ENQUEUED, or DELAYED and due, untouched since `updated_before`, for
        a sweep to re-drive (`kit.sql.claim_rows`); their primary keys and environments."""
        return claim_rows(
            self.session,
            Message.id,
            Message.swept_at,
            Message.status.in_([MessageStatus.ENQUEUED, MessageStatus.DELAYED])
            & (Message.send_at.is_(None) | (Message.send_at <= now))
            & (Message.updated_at <= updated_before),
            environment=Message.environment_id,
            now=now,
            unclaimed_since=unclaimed_since,
            limit=limit,
        )

    def message_ids(self, pks: list[int]) -> list[str]:
        if not pks:
            return []
        return list(
            self.session.scalars(
                select(Message.message_id).where(Message.id.in_(pks)).order_by(Message.id)
            )
        )

    def sending_orphaned(self, delivery_id: int, now: datetime, settings: Settings) -> bool:
        """Whether the delivery's `sending` attempt has nobody to finish it."""
        return DELIVERY_ATTEMPTS.is_orphaned(self.session, delivery_id, now, settings)

    def delivery_by_provider_id(
        self, provider: str, provider_message_id: str
    ) -> MessageDelivery | None:
        return self.find_row(
            MessageDelivery, provider=provider, provider_message_id=provider_message_id
        )

    def channel_delivery(
        self, message_id: str, channel: str
    ) -> tuple[Message, MessageDelivery] | None:
        """A message and its delivery on `channel` (open and click tracking), unlocked."""
        row = self.session.execute(
            select(Message, MessageDelivery)
            .join(MessageDelivery, MessageDelivery.message_pk == Message.id)
            .where(Message.message_id == message_id, MessageDelivery.channel == channel)
            .order_by(MessageDelivery.id)
            .limit(1)
        ).first()
        return (row[0], row[1]) if row is not None else None

    def count_history(self, message: Message, types: Sequence[str]) -> int:
        """How many history entries of these types the message has."""
        return self.count_rows(
            MessageEvent, MessageEvent.message_pk == message.id, MessageEvent.type.in_(types)
        )

    # -- provider health and events' outcomes (Studio) -------------------------------------

    @staticmethod
    def not_sent_among(
        request_ids: Select[tuple[str | None]],
        environment_id: ColumnElement[str] | InstrumentedAttribute[str],
    ) -> ScalarSelect[int]:
        """SQL, for a query on another table: how many of the messages of these sends (their
        `requestId`s, from a correlated subquery such as `RunRepository.sent_request_ids`)
        will not reach their recipient (UNDELIVERABLE, UNROUTABLE, UNMAPPED). The messages
        are found by request (ix_message_request), so a page of rows and their counts is
        one query."""
        # The status is counted, not filtered on: filtered, SQLite would find the messages by
        # status (all of the environment's not sent) rather than by request.
        not_sent = case((Message.status.in_(NOT_SENT), Message.id))
        return (
            select(func.count(not_sent))
            .where(Message.environment_id == environment_id, Message.request_id.in_(request_ids))
            .correlate_except(Message)
            .scalar_subquery()
        )

    def first_history_id_since(self, since: datetime) -> int | None:
        """The id of the oldest history row written at or after `since`, None if none is.

        History ids grow with time (to within a transaction's length) and `created_at` has no
        index: a binary search over the ids finds the boundary in a few dozen primary-key
        reads, so a count over the last hours reads those hours' rows only."""
        first_after = (
            select(MessageEvent.id, MessageEvent.created_at)
            .where(MessageEvent.id >= bindparam("from_id"))
            .order_by(MessageEvent.id)
            .limit(1)
        )
        low = self.session.scalar(select(func.min(MessageEvent.id)))
        high = self.session.scalar(select(func.max(MessageEvent.id)))
        if low is None or high is None:
            return None
        found: int | None = None
        while low <= high:
            middle = (low + high) // 2
            row = self.session.execute(first_after, {"from_id": middle}).first()
            if row is None or row.id > high:
                high = middle - 1
            elif row.created_at >= since:
                found, high = row.id, middle - 1
            else:
                low = row.id + 1
        return found

    def provider_counts(self, environment_id: str, since: datetime) -> dict[str, ProviderCounts]:
        """Per provider, in the environment, since `since`: the messages it sent (their SENT
        history rows) and the messages it failed at least once (PROVIDER_ERROR or
        UNKNOWN_OUTCOME rows, each message counted once). One query over the history rows
        written since then."""
        first_id = self.first_history_id_since(since)
        if first_id is None:
            return {}
        provider = MessageEvent.data["provider"].as_string()
        rows = self.session.execute(
            select(
                provider,
                MessageEvent.type,
                func.count(func.distinct(MessageEvent.message_pk)),
            )
            .where(
                MessageEvent.id >= first_id,
                MessageEvent.created_at >= since,
                MessageEvent.type.in_([SENT_HISTORY, *ERROR_HISTORY]),
                _environment_of_history() == environment_id,
            )
            .group_by(provider, MessageEvent.type)
        ).all()
        counts: dict[str, ProviderCounts] = {}
        for name, event_type, count in rows:
            if name is None:
                continue
            current = counts.get(name, ProviderCounts(0, 0))
            if event_type == SENT_HISTORY:
                current = replace(current, sent=current.sent + count)
            else:
                current = replace(current, failed=current.failed + count)
            counts[name] = current
        return counts

    def provider_errors(
        self,
        environment_id: str,
        provider: str,
        *,
        before_id: int | None,
        after_id: int | None,
        limit: int,
    ) -> list[ProviderErrorRow]:
        """The provider's failed attempts in the environment (their history rows), newest
        first before `before_id`; with `after_id`, the `limit` just newer, oldest first.
        Read newest first by history id, so a page stops once it has its rows."""
        oldest_first = after_id is not None
        message_id = (
            select(Message.message_id)
            .where(Message.id == MessageEvent.message_pk)
            .scalar_subquery()
            .label("message_id")
        )
        query = select(
            MessageEvent.id,
            MessageEvent.created_at,
            MessageEvent.type,
            MessageEvent.data,
            message_id,
        ).where(
            MessageEvent.type.in_(ERROR_HISTORY),
            MessageEvent.data["provider"].as_string() == provider,
            _environment_of_history() == environment_id,
        )
        if before_id is not None:
            query = query.where(MessageEvent.id < before_id)
        if after_id is not None:
            query = query.where(MessageEvent.id > after_id)
        order = MessageEvent.id.asc() if oldest_first else MessageEvent.id.desc()
        return [
            ProviderErrorRow(
                id=row.id,
                at=row.created_at,
                message_id=row.message_id,
                type=row.type,
                channel=str(row.data.get("channel") or ""),
                reason=str(row.data.get("reason") or ""),
                response=str(row.data.get("response") or ""),
                retryable=bool(row.data.get("retryable")),
            )
            for row in self.session.execute(query.order_by(order).limit(limit))
        ]

    def redact_recipients(self, environment: str, ids: list[str], now: datetime) -> int:
        """Erasing users: their messages keep no recipient, address, data or output."""
        return execute_counting(
            self.session,
            update(Message)
            .where(Message.environment_id == environment, Message.recipient.in_(ids))
            .values(recipient=None, to={}, data={}, output={}, updated_at=now),
        )

    # -- the messages of one request (a broadcast's) ---------------------------------------

    def existing_ids(self, message_ids: list[str]) -> set[str]:
        """Which of these message ids are taken already."""
        if not message_ids:
            return set()
        return set(
            self.session.scalars(
                select(Message.message_id).where(Message.message_id.in_(message_ids))
            )
        )

    def request_status_counts(self, environment_id: str, request_id: str) -> dict[str, int]:
        """How many of the request's messages are in each status."""
        rows = self.session.execute(
            select(Message.status, func.count())
            .where(Message.environment_id == environment_id, Message.request_id == request_id)
            .group_by(Message.status)
        )
        return {status: int(count) for status, count in rows}

    def request_messages_in(
        self, environment_id: str, request_id: str, statuses: Sequence[str], limit: int
    ) -> list[str]:
        """Up to `limit` of the request's message ids whose status is one of `statuses`."""
        return list(
            self.session.scalars(
                select(Message.message_id)
                .where(
                    Message.environment_id == environment_id,
                    Message.request_id == request_id,
                    Message.status.in_(statuses),
                )
                .order_by(Message.id)
                .limit(limit)
            )
        )


def _deliveries_of(message: Message) -> Select[MessageDelivery]:
    """A message's deliveries, in id order."""
    return (
        select(MessageDelivery)
        .where(MessageDelivery.message_pk == message.id)
        .order_by(MessageDelivery.id)
    )


# A delivery `sending` for longer than TIDINGS_SENDING_STALE_SECONDS counts as lost, even
# when its owner is alive.
DELIVERY_ATTEMPTS = AttemptTable(
    MessageDelivery,
    DeliveryStatus.SENDING,
    DeliveryStatus.PENDING,
    stale_seconds=lambda settings: settings.sending_stale_seconds,
)


class IdempotencyRepository(Repository):
    def get(self, environment_id: str, key: str) -> IdempotencyRecord | None:
        return self.session.scalars(
            select(IdempotencyRecord).where(
                IdempotencyRecord.environment_id == environment_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.expires_at > utcnow(),
            )
        ).first()

    def claim(
        self,
        environment_id: str,
        key: str,
        request_hash: str,
        status_code: int,
        body: dict[str, Any],
        expires_at: datetime,
    ) -> bool:
        """Store the first response; False when another request holds the key."""
        execute_counting(
            self.session,
            delete(IdempotencyRecord).where(
                IdempotencyRecord.environment_id == environment_id,
                IdempotencyRecord.key == key,
                IdempotencyRecord.expires_at <= utcnow(),
            ),
        )
        return bool(
            execute_counting(
                self.session,
                insert_ignoring_conflicts(self.session, IdempotencyRecord).values(
                    environment_id=environment_id,
                    key=key,
                    request_hash=request_hash,
                    status_code=status_code,
                    body=body,
                    created_at=utcnow(),
                    expires_at=expires_at,
                ),
            )
        )


# The SENT transition, without loading the delivery or the message: the delivery becomes
# sent only if it is still `sending` (a callback or a cancel may have got there first), and
# only then are the history row and the message's status written.
_MARK_DELIVERY_SENT = DriverStatement.text(
    f"UPDATE message_delivery SET status = '{DeliveryStatus.SENT}',"
    " provider_message_id = :provider_message_id, error = NULL, sending_since = NULL,"
    f" updated_at = :now WHERE id = :delivery_id AND status = '{DeliveryStatus.SENDING}'",
    now=UTCDateTime(),
)
_RECORD_SENT = DriverStatement.text(
    "INSERT INTO message_event (message_pk, type, created_at, data)"
    " VALUES (:message_pk, 'SENT', :now, :data)",
    now=UTCDateTime(),
    data=JSONValue,
)
_MARK_MESSAGE_SENT = DriverStatement.text(
    f"UPDATE message SET status = '{MessageStatus.SENT}', reason = NULL,"
    " reason_detail = NULL, sent_at = COALESCE(sent_at, :now), updated_at = :now"
    " WHERE id = :message_pk AND status NOT IN ("
    + ", ".join(f"'{status}'" for status in sorted(MessageStatus.ACCEPTED))
    + ")",
    now=UTCDateTime(),
)


def _mark_sent(
    cursor: Any,
    dialect: Dialect,
    delivery_id: int,
    message_pk: int,
    reply: SentReply,
    sent: Emission | None,
) -> list[int] | None:
    """The SENT transition in three statements on a DB-API cursor, a fourth counting it in
    the metrics rollup (analytics.repository), and a fifth for the `message.sent` webhook
    deliveries; their ids. None when the delivery was no longer
    `sending`: then nothing was written."""
    now = utcnow()
    if not _MARK_DELIVERY_SENT.execute(
        cursor,
        dialect,
        provider_message_id=reply.provider_message_id,
        now=now,
        delivery_id=delivery_id,
    ):
        return None
    _RECORD_SENT.execute(cursor, dialect, message_pk=message_pk, now=now, data=reply.history())
    _MARK_MESSAGE_SENT.execute(cursor, dialect, message_pk=message_pk, now=now)
    count_delivery_on_cursor(cursor, dialect, delivery_id, Metric.SENT, now)
    return emit_on_cursor(cursor, dialect, sent, now) if sent is not None else []


def _environment_of_history() -> ScalarSelect[str]:
    """SQL: the environment of a history row's message, looked up by its primary key. As a
    join, SQLite would read every message of the environment and their history, then sort;
    looked up, the history is read in id order and a page stops once it is full."""
    return (
        select(Message.environment_id)
        .where(Message.id == MessageEvent.message_pk)
        .scalar_subquery()
    )


# History rows: a provider sent a message; a provider's attempt failed.
SENT_HISTORY = "SENT"
ERROR_HISTORY = ("PROVIDER_ERROR", "UNKNOWN_OUTCOME")
# Message statuses that mean the message will not reach its recipient.
NOT_SENT = (
    MessageStatus.UNDELIVERABLE,
    MessageStatus.BOUNCED,
    MessageStatus.UNROUTABLE,
    MessageStatus.UNMAPPED,
)


@dataclass(frozen=True, slots=True)
class ProviderCounts:
    """Messages a provider sent, and messages it failed at least once, over a time window."""

    sent: int
    failed: int


@dataclass(frozen=True, slots=True)
class ProviderErrorRow:
    """A provider's failed attempt, from the message's history."""

    id: int
    at: datetime
    message_id: str
    type: str
    channel: str
    reason: str
    response: str
    retryable: bool
