"""How a job's events are processed: in groups, each in one transaction.

What an event means is `tidings.event.service`'s; this is the policy of taking them. A job's
events are processed in groups that share one write transaction; if an event of a group
fails, the group is rolled back and its events processed again one transaction each
(`service.process_event`), so the failure is recorded on its own event.

Per-user order: before an event is processed, the same user's earlier unprocessed events are.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from tidings.automation.repository import RunRepository
from tidings.db import Database
from tidings.event.service import ProcessResult, process_event, process_in
from tidings.eventstore.repository import EventRepository, ReceivedEvent, UserKey
from tidings.kit.sql import by_environment
from tidings.kit.time import utcnow
from tidings.observability import metrics
from tidings.profile.repository import ProfileRepository
from tidings.worker.context import WorkerContext

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    """A job's events, by what came of them (the skipped ones aside)."""

    processed: list[int]
    retry: list[int]
    failed: list[int]


# A group of events shares one transaction: the transaction's begin, commit and session cost
# once per group rather than once per event. The group ends at GROUP_EVENTS events or after
# GROUP_SECONDS, so that it holds the write lock (SQLite's, which the ingest writer also
# needs) only briefly.
GROUP_EVENTS = 32
GROUP_SECONDS = 0.05
# A job's first read looks at up to this many of the oldest events still `received`; when
# that is all of them, it needs no other query to order its group.
RECEIVED_LOOKAHEAD = 64
# Events a sweep re-drives in one job.
REDRIVE_EVENTS_PER_JOB = 100
# A user's earlier pending events a job takes ahead of the user's newest, at most.
PREDECESSORS_PER_USER = 100


class RecentlyProcessed:
    """The ids of the events this process processed lately, at most `size`: a job whose
    events an earlier job took (`take_waiting`) finds them here and costs no query."""

    def __init__(self, size: int = 20_000) -> None:
        self._lock = threading.Lock()
        self._ids: set[int] = set()
        self._order: collections.deque[int] = collections.deque()
        self._size = size

    def add(self, event_ids: Iterable[int]) -> None:
        with self._lock:
            for event_id in event_ids:
                if event_id not in self._ids:
                    self._ids.add(event_id)
                    self._order.append(event_id)
            while len(self._order) > self._size:
                self._ids.discard(self._order.popleft())

    def others(self, event_ids: Iterable[int]) -> list[int]:
        """Those of the events not among them."""
        with self._lock:
            return [event_id for event_id in event_ids if event_id not in self._ids]


def process_events(
    database: Database,
    event_ids: Iterable[int],
    max_attempts: int,
    context: WorkerContext | None = None,
    pace: Callable[[], bool] | None = None,
    take_waiting: bool = False,
    recent: RecentlyProcessed | None = None,
) -> ProcessOutcome:
    """Process events, each with its user's earlier pending ones first, in groups.

    With a `context`, the runs an event starts take their first database-only steps (a send)
    in the event's own transaction; its outbox then holds the messages to send and the runs
    that still need a job.
    `pace` is called before each group (it may wait: tidings.ingest.pressure); when it
    answers that ingest is still saturated, the group is a single event, so that the write
    lock the ingest writer needs is held for one event only.

    With `take_waiting`, a job of fewer than GROUP_EVENTS events fills its group with the
    oldest other events that wait (not failed ones, which wait for their retry): when the
    consumer falls behind, the queue holds many small jobs, and this lets the group grow with
    the backlog. Their own jobs then find them processed. For one writer at a time (SQLite);
    workers sharing a server database would all take the same oldest events and queue on
    their locks. `recent` skips the events this process processed lately, and learns the
    ones processed here.
    """
    outcome = ProcessOutcome([], [], [])
    if recent is not None:
        event_ids = recent.others(event_ids)
        if not event_ids:
            return outcome
    order = _with_predecessors(database, event_ids, GROUP_EVENTS if take_waiting else 0)
    lists = {
        ProcessResult.PROCESSED: outcome.processed,
        ProcessResult.RETRY: outcome.retry,
        ProcessResult.FAILED: outcome.failed,
    }
    position = 0
    while position < len(order):
        size = 1 if pace is not None and pace() else GROUP_EVENTS
        taken, committed = _process_group(database, order[position:], context, outcome, size)
        if not committed:
            # Something in the group failed, and all of it was rolled back: each event in a
            # transaction of its own, so that the failure stays with its event.
            for event_id in taken:
                result = process_event(database, event_id, max_attempts, context)
                lists.get(result, []).append(event_id)
        position += len(taken)
    if recent is not None:
        recent.add(outcome.processed)
    metrics.events_processed(len(outcome.processed), len(outcome.retry), len(outcome.failed))
    return outcome


def _with_predecessors(database: Database, event_ids: Iterable[int], fill: int) -> list[int]:
    """The events still `received`, with each user's earlier pending ones, in id order: so a
    user's events are processed in the order they arrived. Up to `fill` in all, other
    waiting events (received and not failed yet) join them."""
    wanted = sorted(set(event_ids))
    if not wanted:
        return []
    with database.read() as session:
        repository = EventRepository(session)
        if fill:
            oldest = repository.oldest_received(RECEIVED_LOOKAHEAD)
            room = max(0, fill - len(wanted))
            waiting = [event.id for event in oldest if event.attempts == 0][:room]
            if len(oldest) < RECEIVED_LOOKAHEAD:
                # Every event still `received` is in hand: the group and the predecessors
                # follow from it, without the two queries below (a large share of a lone
                # event's job).
                return _order_among(set(wanted).union(waiting), oldest)
            if len(waiting) < room:  # the oldest are mostly failed ones waiting for a retry
                waiting = list(repository.waiting(room))
            wanted = sorted(set(wanted).union(waiting))
        pending = repository.pending_of(wanted)
        found = set(pending)
        latest: dict[tuple[str, str], dict[str, int]] = {}
        for event_id, (environment_id, source, user_id) in pending.items():
            if user_id is not None:
                users = latest.setdefault((environment_id, source), {})
                users[user_id] = max(event_id, users.get(user_id, 0))
        for (environment_id, source), users in latest.items():
            found.update(
                repository.earlier_pending_of_users(
                    environment_id, source, users, limit=PREDECESSORS_PER_USER
                )
            )
    return sorted(found)


def _order_among(candidates: set[int], received: list[ReceivedEvent]) -> list[int]:
    """`_with_predecessors` when `received` holds every event still `received`: those of
    the candidates among them, with their users' earlier ones."""
    users = {event.id: event.user for event in received}
    found = {event_id for event_id in candidates if event_id in users}
    latest: dict[UserKey, int] = {}
    for event_id in found:
        if users[event_id][2] is not None:
            latest[users[event_id]] = max(event_id, latest.get(users[event_id], 0))
    taken: dict[UserKey, int] = {}
    for event in sorted(received, key=lambda event: event.id):
        if event.id < latest.get(event.user, 0) and taken.get(event.user, 0) < (
            PREDECESSORS_PER_USER
        ):
            taken[event.user] = taken.get(event.user, 0) + 1
            found.add(event.id)
    return sorted(found)


def _process_group(
    database: Database,
    event_ids: list[int],
    context: WorkerContext | None,
    outcome: ProcessOutcome,
    size: int = GROUP_EVENTS,
) -> tuple[list[int], bool]:
    """Process events from the front of `event_ids` in one transaction, until the group is
    full (`size` events, or GROUP_SECONDS). Returns the events it took, and whether it
    committed: if any of them fails, the whole group is rolled back, for the caller to
    process each alone. (Failures are rare, and a savepoint per event would cost every event
    a noticeable part of its processing.)"""
    taken: list[int] = []
    done: list[ProcessResult] = []
    group = event_ids[:size]
    deadline = time.monotonic() + GROUP_SECONDS
    try:
        with database.write() as (session, outbox):
            # Held until the group ends, so that get_locked finds each event in the session.
            loaded = EventRepository(session).lock_many(group)
            # The group's users: their profiles, alias targets and waits, read once for all.
            users = {
                (event.environment_id, identifier)
                for event in loaded
                for identifier in (event.user_id, event.anonymous_id)
                if identifier is not None
            }
            ProfileRepository(session).read_ahead(users)
            RunRepository(session).read_waits_ahead(users)
            for event_id in event_ids:
                if len(taken) >= size or (taken and time.monotonic() > deadline):
                    break
                taken.append(event_id)
                done.append(process_in(session, event_id, context, outbox, isolated=False))
            del loaded
    except Exception as exc:
        # Before taking any (beginning, or locking), the failure concerned the whole group.
        logger.info(
            "a group of %d events failed (%s); processing each alone",
            len(taken) or len(group),
            type(exc).__name__,
            exc_info=True,
        )
        # Failed before taking any (beginning, or locking the events): the first goes alone,
        # so that the caller always moves on.
        return taken or event_ids[:1], False
    for event_id, result in zip(taken, done, strict=True):
        if result is ProcessResult.PROCESSED:
            outcome.processed.append(event_id)
    return taken, True


def redrive_stale_events(
    database: Database, received_before: datetime, unclaimed_since: datetime, limit: int
) -> int:
    """Claim, for a sweep, events still `received` from before the given time (their job was
    lost, or is late), up to `limit`, and process them again once the claim commits;
    returns how many."""
    with database.write() as (session, outbox):
        claimed = EventRepository(session).claim_stale(
            received_before, unclaimed_since, utcnow(), limit
        )
        for environment_id, event_ids in by_environment(claimed).items():
            for start in range(0, len(event_ids), REDRIVE_EVENTS_PER_JOB):
                outbox.add_events(environment_id, event_ids[start : start + REDRIVE_EVENTS_PER_JOB])
        return len(claimed)
