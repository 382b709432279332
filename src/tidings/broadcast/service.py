"""Broadcasts: a template sent to every member of a list, an audience or a tenant, now or at
`send_at`, chunk by chunk at the environment's send rate.

- `create` stores the broadcast and asks for its first release (a `broadcast.advance` job,
  at `send_at` when it is later).
- `release_chunk` is one transaction: it takes the next `chunk` members after the cursor,
  makes one message per member through `message.service.accept_recipients` (the path of
  `POST /send`), and moves the cursor by compare-and-set. Its messages go to the queue at
  the bulk priority (below every transactional job) after the commit, and the next release
  is asked for when the environment's rate allows it.
- Exactly once: the cursor and the chunk's messages commit together, so a crash between
  chunks resumes after the last committed one; a chunk done twice (a stale job, a race)
  finds the cursor moved and makes nothing, and each message id is derived from the
  broadcast and the user, so no recipient ever has two.
- `pause` stops the releases, `resume` continues from the cursor, `cancel` stops them and
  cancels the messages made but not yet sent.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from tidings.audience.repository import AudienceRepository
from tidings.broadcast.repository import BroadcastRepository
from tidings.broadcast.schemas import BroadcastBody
from tidings.db import Database, Outbox
from tidings.errors import BadRequest, Conflict, found
from tidings.kit.ids import new_id
from tidings.kit.missing import Missing
from tidings.kit.time import utcnow
from tidings.kit.windows import WindowError, parse_window
from tidings.list.repository import ListRepository
from tidings.message import service as message_service
from tidings.message.recipients import Recipient
from tidings.message.repository import MessageRepository
from tidings.message.schemas import Delay, MessageSpec, Metadata
from tidings.models import Broadcast, BroadcastStatus, MessageStatus
from tidings.notification.repository import NotificationRepository
from tidings.notification.service import not_found as template_not_found
from tidings.tenant.repository import TenantRepository
from tidings.workspace.service import Scope

_missing_broadcast = Missing(
    "broadcast", "GET /broadcasts lists them.", code="broadcast_not_found", field="broadcast_id"
)

logger = logging.getLogger(__name__)

# Recipients released per transaction, at most (fewer when the rate is lower: a chunk is
# about one second of the environment's rate).
CHUNK = 500
TARGETS = ("audience_id", "list_id", "tenant_id")
# Messages a cancel takes per transaction.
CANCEL_BATCH = 500


def chunk_size(rate: float) -> int:
    """Recipients per chunk at `rate` messages per second: about a second's worth."""
    return max(1, min(CHUNK, math.ceil(rate)))


def message_id_of(environment_id: str, broadcast_id: str, user_id: str) -> str:
    """The one message id a recipient of a broadcast can have."""
    digest = hashlib.sha256(f"{environment_id}\0{broadcast_id}\0{user_id}".encode()).hexdigest()
    return f"msg_{digest[:40]}"


# ---------------------------------------------------------------------------------------------
# Creating


def _target(session: Session, scope: Scope, body: BroadcastBody) -> dict[str, str]:
    given = {key: value for key, value in body.to.model_dump().items() if value is not None}
    if len(given) != 1:
        raise BadRequest(
            "to: a broadcast goes to exactly one of audience_id, list_id or tenant_id"
            + (f"; got {', '.join(sorted(given))}." if given else "."),
            code="invalid_recipient",
            field="to" if not given else f"to.{sorted(given)[1]}",
        )
    ((key, value),) = given.items()
    environment_id = scope.environment_id
    if key == "list_id" and not ListRepository(session).exists(environment_id, value):
        raise BadRequest(
            f"to.list_id: no list {value!r}. Create it with PUT /lists/{{id}}.",
            code="unknown_list",
            field="to.list_id",
        )
    if key == "audience_id" and AudienceRepository(session).get(environment_id, value) is None:
        raise BadRequest(
            f"to.audience_id: no audience {value!r}. Create it with PUT /audiences/{{id}}.",
            code="unknown_audience",
            field="to.audience_id",
        )
    if key == "tenant_id" and TenantRepository(session).get(scope, value) is None:
        raise BadRequest(
            f"to.tenant_id: no tenant {value!r}. A Segment group call makes a tenant.",
            code="unknown_tenant",
            field="to.tenant_id",
        )
    return {key: value}


def _check_window(window: dict[str, Any] | str | None) -> None:
    if window is None:
        return
    try:
        parse_window(window)
    except WindowError as exc:
        raise BadRequest(
            f"window{exc.at}: {exc.reason}.", code="invalid_window", field=f"window{exc.at}"
        ) from exc


def create(
    session: Session, outbox: Outbox, scope: Scope, body: BroadcastBody
) -> tuple[Broadcast, bool]:
    """The broadcast `body` asks for, and True when this call made it. A repeat of a
    broadcast id with the same body answers the broadcast made first; with another body it
    is refused (409)."""
    if not NotificationRepository(session).exists(scope, body.template):
        raise template_not_found(body.template)
    target = _target(session, scope, body)
    _check_window(body.window)
    send_at = (
        None if body.send_at is None else message_service.schedule_time(body.send_at, "send_at")
    )
    repository = BroadcastRepository(session)
    broadcast_id = body.broadcast_id or new_id("bc")
    existing = repository.get(scope.environment_id, broadcast_id)
    if existing is not None:
        same = (
            existing.template == body.template
            and existing.target == target
            and existing.data == body.data
            and existing.window == body.window
            and existing.send_at == send_at
        )
        if not same:
            raise Conflict(
                f"broadcast_id: broadcast {broadcast_id!r} exists with another body. Give a "
                "new broadcast_id, or repeat the first body to read it.",
                code="broadcast_exists",
                field="broadcast_id",
            )
        return existing, False
    now = utcnow()
    later = send_at is not None and send_at > now
    broadcast = Broadcast(
        workspace_id=scope.workspace_id,
        environment_id=scope.environment_id,
        broadcast_id=broadcast_id,
        template=body.template,
        target=target,
        data=body.data,
        window=body.window,
        status=BroadcastStatus.SCHEDULED if later else BroadcastStatus.RUNNING,
        send_at=send_at,
        cursor=0,
        released=0,
        next_chunk_at=send_at if later and send_at is not None else now,
        created_at=now,
        updated_at=now,
        started_at=None if later else now,
    )
    repository.add(broadcast)
    outbox.add_broadcast(broadcast.id, 0, send_at if later else None)
    return broadcast, True


# ---------------------------------------------------------------------------------------------
# Releasing chunks


@dataclass(frozen=True)
class Released:
    """What one release did: how many messages it made, and when the next release is due
    (None: nothing more to do, the broadcast is finished, stopped or taken by another job)."""

    messages: int
    next_at: datetime | None


def _members(
    session: Session, broadcast: Broadcast, after: int, limit: int
) -> list[tuple[int, str]]:
    """(row id, user id) of the next members after row `after`: list subscriptions,
    audience stays or tenant memberships, in id order."""
    target = broadcast.target
    environment_id = broadcast.environment_id
    scope = Scope(broadcast.workspace_id, environment_id, "", "")
    if "list_id" in target:
        rows = ListRepository(session).subscriptions(scope, target["list_id"], after, limit)
        return [(row.id, row.user_id) for row in rows]
    if "tenant_id" in target:
        found = TenantRepository(session).members(scope, target["tenant_id"], after, limit)
        return [(row.id, row.user_id) for row in found]
    audiences = AudienceRepository(session)
    audience = audiences.get(environment_id, target["audience_id"])
    if audience is None:
        return []
    return list(audiences.member_ids_after(audience.id, after, limit))


def release_chunk(
    session: Session,
    outbox: Outbox,
    broadcast_pk: int,
    cursor: int,
    *,
    rate: float,
    message_timeout: timedelta,
    chunk: int | None = None,
    now: datetime | None = None,
) -> Released:
    """Release the broadcast's next chunk, if it is the one at `cursor` and its time has
    come, in the caller's transaction."""
    now = now or utcnow()
    repository = BroadcastRepository(session)
    broadcast = repository.lock(broadcast_pk)
    if (
        broadcast is None
        or broadcast.status not in BroadcastStatus.ACTIVE
        or broadcast.cursor != cursor
    ):
        return Released(0, None)  # stopped, finished, or another job moved on
    if broadcast.next_chunk_at > now:
        return Released(0, broadcast.next_chunk_at)
    horizon = repository.paced_until(broadcast.environment_id)
    if horizon is not None and horizon > now:
        # Another chunk of the environment's used the rate up to `horizon`.
        repository.claim(broadcast_pk, {"cursor": cursor}, next_chunk_at=horizon, updated_at=now)
        return Released(0, horizon)
    size = chunk or chunk_size(rate)
    # One more than the chunk: whether it is there tells whether this chunk is the last.
    members = _members(session, broadcast, cursor, size + 1)
    done = len(members) <= size
    members = members[:size]
    last = members[-1][0] if members else cursor
    paced_until = now + timedelta(seconds=len(members) / rate)
    values: dict[str, Any] = {
        "cursor": last,
        "released": broadcast.released + len(members),
        "paced_until": paced_until if members else broadcast.paced_until,
        "next_chunk_at": paced_until,
        "updated_at": now,
    }
    if broadcast.status == BroadcastStatus.SCHEDULED:
        values.update(status=BroadcastStatus.RUNNING, started_at=now)
    if done:
        values.update(status=BroadcastStatus.COMPLETED, finished_at=now)
    if not repository.claim(broadcast_pk, {"cursor": cursor}, **values):
        return Released(0, None)
    made = _make_messages(session, broadcast, [user_id for _, user_id in members], message_timeout)
    outbox.add_bulk_messages(made, broadcast.environment_id)
    if done:
        return Released(len(made), None)
    outbox.add_broadcast(broadcast_pk, last, paced_until)
    return Released(len(made), paced_until)


def _make_messages(
    session: Session, broadcast: Broadcast, user_ids: list[str], message_timeout: timedelta
) -> list[message_service.AcceptedMessage]:
    """One message per user not reached yet, made as `POST /send` makes them."""
    ids = {
        user_id: message_id_of(broadcast.environment_id, broadcast.broadcast_id, user_id)
        for user_id in user_ids
    }
    taken = MessageRepository(session).existing_ids(list(ids.values()))
    users = [user_id for user_id, message_id in ids.items() if message_id not in taken]
    if not users:
        return []
    source = {"type": "broadcast", "broadcast_id": broadcast.broadcast_id}
    recipient_source = {key: value for key, value in broadcast.target.items()}
    spec = MessageSpec(
        to={},
        template=broadcast.template,
        data=broadcast.data,
        delay=Delay(window=broadcast.window) if broadcast.window is not None else None,
        metadata=Metadata(event=f"broadcast/{broadcast.broadcast_id}"),
    )
    recipients = [Recipient(user_id, {"user_id": user_id}, recipient_source) for user_id in users]
    scope = Scope(broadcast.workspace_id, broadcast.environment_id, "", "")
    _, accepted = message_service.accept_recipients(
        session,
        scope,
        spec,
        recipients,
        message_timeout=message_timeout,
        source=source,
        message_ids=[ids[user_id] for user_id in users],
        request_id=broadcast.broadcast_id,
    )
    return accepted


def advance(
    database: Database,
    broadcast_pk: int,
    cursor: int,
    *,
    rate: float,
    message_timeout: timedelta,
    now: datetime | None = None,
) -> Released:
    """The `broadcast.advance` job: one chunk in one unit of work. A job that comes early
    asks to be run again when the chunk is due (the outbox of its own transaction)."""
    with database.write() as (session, outbox):
        released = release_chunk(
            session,
            outbox,
            broadcast_pk,
            cursor,
            rate=rate,
            message_timeout=message_timeout,
            now=now,
        )
        if released.messages == 0 and released.next_at is not None:
            outbox.add_broadcast(broadcast_pk, cursor, released.next_at)
    return released


def redrive(database: Database, before: datetime, unclaimed_since: datetime, limit: int) -> int:
    """The sweeper's part: ask again for the releases of broadcasts whose next chunk was
    due before `before` (their job was lost, or the queue is behind)."""
    with database.write() as (session, outbox):
        claimed = BroadcastRepository(session).claim_due(before, utcnow(), unclaimed_since, limit)
        for broadcast_pk, cursor in claimed:
            outbox.add_broadcast(broadcast_pk, cursor, None)
    return len(claimed)


# ---------------------------------------------------------------------------------------------
# Reading, pausing, resuming, canceling


def get(session: Session, scope: Scope, broadcast_id: str) -> Broadcast:
    return found(
        BroadcastRepository(session).get(scope.environment_id, broadcast_id),
        _missing_broadcast(broadcast_id),
    )


def page(session: Session, scope: Scope, after_id: int | None, limit: int) -> list[Broadcast]:
    return list(BroadcastRepository(session).page(scope.environment_id, after_id, limit))


def counts(session: Session, broadcast: Broadcast) -> dict[str, int]:
    """targeted, sent, suppressed, failed, canceled and pending, from its messages."""
    by_status = MessageRepository(session).request_status_counts(
        broadcast.environment_id, broadcast.broadcast_id
    )
    failed = {MessageStatus.UNDELIVERABLE, MessageStatus.UNROUTABLE, MessageStatus.UNMAPPED}

    def of(statuses: set[str] | frozenset[str]) -> int:
        return sum(count for status, count in by_status.items() if status in statuses)

    result = {
        "targeted": sum(by_status.values()),
        "sent": of(MessageStatus.ACCEPTED),
        "suppressed": of({MessageStatus.FILTERED, MessageStatus.SUPPRESSED}),
        "failed": of(failed),
        "canceled": of({MessageStatus.CANCELED}),
    }
    result["pending"] = result["targeted"] - sum(
        result[key] for key in ("sent", "suppressed", "failed", "canceled")
    )
    return result


def _locked(session: Session, scope: Scope, broadcast_id: str) -> Broadcast:
    broadcast = BroadcastRepository(session).lock(get(session, scope, broadcast_id).id)
    assert broadcast is not None
    return broadcast


def _finished(broadcast: Broadcast, action: str) -> Conflict:
    return Conflict(
        f"Broadcast {broadcast.broadcast_id!r} is {broadcast.status} and cannot be {action}.",
        code="broadcast_finished",
        field="broadcast_id",
    )


def pause(session: Session, scope: Scope, broadcast_id: str) -> Broadcast:
    """Stop releasing chunks (the messages already made go on)."""
    broadcast = _locked(session, scope, broadcast_id)
    if broadcast.status in BroadcastStatus.FINAL:
        raise _finished(broadcast, "paused")
    if broadcast.status in BroadcastStatus.ACTIVE:
        broadcast.status = BroadcastStatus.PAUSED
        broadcast.updated_at = utcnow()
    return broadcast


def resume(session: Session, outbox: Outbox, scope: Scope, broadcast_id: str) -> Broadcast:
    """Release chunks again, from the cursor (at `send_at` if that is still to come)."""
    broadcast = _locked(session, scope, broadcast_id)
    if broadcast.status in BroadcastStatus.FINAL:
        raise _finished(broadcast, "resumed")
    if broadcast.status == BroadcastStatus.PAUSED:
        now = utcnow()
        later = broadcast.started_at is None and broadcast.send_at is not None
        later = later and broadcast.send_at is not None and broadcast.send_at > now
        broadcast.status = BroadcastStatus.SCHEDULED if later else BroadcastStatus.RUNNING
        broadcast.next_chunk_at = max(broadcast.next_chunk_at, now)
        broadcast.updated_at = now
        at = broadcast.next_chunk_at if broadcast.next_chunk_at > now else None
        outbox.add_broadcast(broadcast.id, broadcast.cursor, at)
    return broadcast


def cancel(session: Session, scope: Scope, broadcast_id: str) -> Broadcast:
    """Stop releasing chunks for good; `cancel_unsent` then cancels what was made and not
    sent."""
    broadcast = _locked(session, scope, broadcast_id)
    if broadcast.status == BroadcastStatus.COMPLETED:
        raise _finished(broadcast, "canceled")
    if broadcast.status != BroadcastStatus.CANCELED:
        now = utcnow()
        broadcast.status = BroadcastStatus.CANCELED
        broadcast.finished_at = now
        broadcast.updated_at = now
    return broadcast


def cancel_unsent(database: Database, scope: Scope, broadcast_id: str) -> int:
    """Cancel the canceled broadcast's messages still waiting (ENQUEUED, or DELAYED by a
    window), CANCEL_BATCH a transaction; returns how many."""
    waiting = (MessageStatus.ENQUEUED, MessageStatus.DELAYED)
    canceled = 0
    while True:
        with database.write() as (session, _):
            message_ids = MessageRepository(session).request_messages_in(
                scope.environment_id, broadcast_id, waiting, CANCEL_BATCH
            )
            for message_id in message_ids:
                try:
                    message_service.cancel(session, scope, message_id)
                    canceled += 1
                except Conflict:
                    pass  # routed meanwhile: under way, not waiting any more
        if len(message_ids) < CANCEL_BATCH:
            return canceled
