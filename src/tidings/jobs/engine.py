"""Huey, configured from Settings, and the jobs Tidings runs on it.

The database holds the truth; a job only says "look at these rows". Huey removes a job when a
consumer takes it, so a crash can drop one. The sweeper re-drives whatever is due or stale,
so nothing acknowledged depends on a job surviving: everything pending when a consumer
starts and when another worker's lease expires (worker/lease.py), and what is older than
`TIDINGS_SWEEP_STALE_SECONDS` every minute.

Storage (`TIDINGS_JOB_STORAGE`):
- `sqlite` (default): `<data dir>/jobs.db`, for one machine;
- `redis://host:port/db`: for many workers on many machines;
- `postgresql://…`: Huey's Postgres storage (LISTEN/NOTIFY, SKIP LOCKED).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from huey import Huey, PostgresHuey, PriorityRedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer, Worker
from huey.storage import PriorityRedisStorage, SqliteStorage

from tidings.automation import membership, runs, schedules
from tidings.broadcast import service as broadcasts
from tidings.config import Settings
from tidings.db import Outbox
from tidings.event.batching import (
    GROUP_EVENTS,
    RecentlyProcessed,
    process_events,
    redrive_stale_events,
)
from tidings.ingest.pressure import no_pause
from tidings.jobs.deliveries import DeliveryPool
from tidings.jobs.fairness import FairShare
from tidings.jobs.holding import HeldEvents
from tidings.jobs.webhooks import WebhookPool
from tidings.kit.sql import chunks
from tidings.kit.time import utcnow
from tidings.message import pipeline
from tidings.webhook_out import delivery as webhook_delivery
from tidings.worker.context import WorkerContext

logger = logging.getLogger(__name__)

# Rows a sweep claims per transaction; it takes chunk after chunk until none is left.
SWEEP_BATCH = 500
# A row a sweep re-drove is not re-driven by the periodic sweep again for this long: a
# backlog still waiting in the queue is queued again at most once per period. (A consumer's
# start and a worker's expired lease re-drive everything not claimed within a lease period.)
CLAIM_HOLD_SECONDS = 300.0
# More jobs than this waiting in the queue: the consumers are behind, and what looks stale is
# most likely still queued. The periodic sweep then waits for the queue to drain rather than
# queue the backlog a second time (which, in a flood, cost more memory and drained slower).
BACKLOG_JOBS = 200
MESSAGES_PER_JOB = 20
# Events a job takes at most. Its first read takes them all in one query, and it holds a
# consumer thread until it has processed them: a backlog is queued as many jobs, which bounds
# a job's memory and lets other jobs (a run's wake-up, a delivery) run between them.
EVENTS_PER_JOB = 500
# Runs (an event's, and the ones they invoke) one job advances before queueing the rest.
RUNS_PER_JOB = 200
# Outbound webhook jobs only hand a delivery to the webhook pool. They queue behind the
# fresh work of every environment (whose priority is minus its recent load, near 0 unless
# it floods) but ahead of a flooding environment's deep backlog.
WEBHOOK_PRIORITY = -100
# A webhook job that finds the webhook pool full is queued again this much later.
WEBHOOK_POOL_FULL_SECONDS = 2.0
# The priority of broadcasts' jobs (their releases and their messages): below any fair
# share's (minus an environment's recent load), so every transactional job (an event's, a
# /send's, an automation's) queued while a broadcast runs is taken before its next job.
BULK_PRIORITY = -1_000_000_000


class ConfigurationError(ValueError):
    pass


class QueueStorage(SqliteStorage):  # type: ignore[misc]
    """Huey's SQLite storage with `synchronous=NORMAL`.

    In WAL mode that survives a crash of the process without an fsync per job. A power cut
    may lose the newest jobs, which the sweeper re-drives from the database.
    """

    def _create_connection(self) -> Any:
        connection = super()._create_connection()
        connection.execute("pragma synchronous=1")
        return connection


class QueueHuey(SqliteHuey):  # type: ignore[misc]
    storage_class = QueueStorage


class RedisQueueStorage(PriorityRedisStorage):  # type: ignore[misc]
    """Huey's Redis storage with priorities (a sorted set), under a key of its own: the
    queue of an install that predates priorities is a list under Huey's usual key, and the
    sweeper re-drives what it held."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue_key = f"huey.redis.{self.name}.by-priority"


class RedisQueueHuey(PriorityRedisHuey):  # type: ignore[misc]
    storage_class = RedisQueueStorage


def build_huey(settings: Settings) -> Huey:
    storage = settings.job_storage
    name = settings.job_queue
    common: dict[str, Any] = {"results": False, "utc": True}
    if storage == "sqlite":
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return QueueHuey(
            name=name, filename=str((settings.data_dir / "jobs.db").resolve()), **common
        )
    if storage.startswith(("redis://", "rediss://", "unix://")):
        return RedisQueueHuey(name=name, url=storage, blocking=True, read_timeout=0.25, **common)
    if storage.startswith(("postgresql://", "postgres://")):
        return PostgresHuey(name=name, dsn=storage, **common)
    raise ConfigurationError(
        f"TIDINGS_JOB_STORAGE={storage!r} is not supported: use 'sqlite', a redis:// URL or a "
        "postgresql:// URL."
    )


class Replays(Protocol):
    """The automation replays' child processes of this worker (replay/process.py, which the
    runtime builds and hands to the engine)."""

    def start(self, replay_pk: int) -> bool:
        """Start a child for the replay, or say that none is free (False)."""
        ...

    def keep(self) -> int:
        """Queue again the replays nobody runs, and delete the expired ones; returns how
        many were queued."""
        ...

    def close(self) -> None:
        """Stop every child."""
        ...


class JobEngine:
    """The Huey instance plus Tidings' tasks. Task bodies are plain functions tests call."""

    def __init__(self, huey: Huey, context: WorkerContext, replays: Replays) -> None:
        self.huey = huey
        self._close_lock = threading.Lock()
        self.context = context
        self.database = context.database
        self.settings = context.settings
        # Called before each event, run and message a job handles (`consumer`).
        self.pace: Callable[[], bool] = no_pause
        self._recent = RecentlyProcessed()
        self.fair_share = FairShare()
        # Set when this process queues a job to run now: its idle consumer threads, which
        # poll a SQLite queue, take it at once rather than at their next poll.
        self.wake = threading.Event()
        # Provider calls, off the consumer threads while a consumer runs (jobs/deliveries.py).
        self.deliveries = DeliveryPool(context, self.settings.delivery_threads)
        # Outbound webhook requests, on threads of their own (jobs/webhooks.py).
        self.webhooks = WebhookPool(context, self.settings.webhook_threads)
        # Automation replays, each in a child process (replay/process.py); a child that ends
        # frees its place for a queued replay.
        self.replays = replays
        # Events held for the event job about to start (jobs/holding.py).
        self._held = HeldEvents()
        self._process = huey.task(name="event.process")(self._process_events)
        self._process_message = huey.task(name="message.process")(self._run_process_message)
        self._process_messages = huey.task(name="message.process_many")(self._run_process_messages)
        self._deliver = huey.task(name="message.deliver")(self._run_deliver)
        self._advance = huey.task(name="automation.advance")(self._run_advance)
        self._scan = huey.task(name="audience.scan")(self._run_scan)
        self._webhook = huey.task(name="webhook.deliver")(self._run_webhook)
        self._broadcast = huey.task(name="broadcast.advance")(self._run_broadcast)
        self._replay = huey.task(name="automation.replay")(self._run_replay)
        self._sweep = huey.periodic_task(crontab(minute="*"), name="sweep")(self.sweep)
        # Each consumer thread opens its own storage connections (Postgres: one for LISTEN);
        # close them when the thread stops rather than leaving them to the garbage collector.
        huey.on_shutdown(name="storage.close")(self.close)

    def close(self) -> None:
        # Huey's storage shares one connection between threads; another thread's shutdown
        # hook may have closed it already.
        with self._close_lock, contextlib.suppress(AttributeError):
            self.huey.storage.close()

    def _queue(
        self,
        task: Any,
        argument: Any,
        *,
        eta: datetime | None = None,
        priority: int | None = None,
    ) -> None:
        """Queue a job about rows already committed. If the job storage fails, that is
        logged, not raised: the rows are the truth and the sweeper re-drives them, and a
        request whose data is committed must not answer 5xx (its sender would retry it into
        a duplicate)."""
        try:
            if eta is None:
                task(argument, priority=priority)
                self.wake.set()
            else:
                task.schedule(args=(argument,), eta=eta, priority=priority)
        except Exception:
            logger.exception("could not queue a %s job; the sweeper will re-drive it", task.name)

    # Dispatching a committed unit of work's outbox (tidings.db.Dispatcher): the one way work
    # reaches the queue.
    def dispatch(self, outbox: Outbox) -> None:
        """Queue what a committed unit of work asked for. Inside a job that keeps its
        immediate work (`_keeping_here`), runs and messages due now stay in that job."""
        here = _here.get()
        now = utcnow()
        for environment_id, event_ids in outbox.events:
            self.enqueue_events(event_ids, environment_id)
        due: dict[str | None, list[str]] = {}
        for message_id, at, environment in outbox.messages:
            if at is not None and at > now:
                self._queue(self._process_message, message_id, eta=at)
            elif here is not None:
                here.messages.append(message_id)
            else:
                due.setdefault(environment, []).append(message_id)
        for environment, message_ids in due.items():
            self.process_messages(message_ids, environment)
        for run_pk, at in outbox.runs:
            if at is None and here is not None:
                here.runs.append(run_pk)
            else:
                self._queue(self._advance, run_pk, eta=at)
        for delivery_id, at in outbox.deliveries:
            self._queue(self._deliver, delivery_id, eta=at)
        for audience_pk in outbox.scans:
            self._queue(self._scan, audience_pk)
        for webhook_id, at in outbox.webhooks:
            self._queue(self._webhook, webhook_id, eta=at, priority=WEBHOOK_PRIORITY)
        for replay_pk in outbox.replays:
            self._queue(self._replay, replay_pk)
        self._dispatch_bulk(outbox, now)
        broker = self.context.inbox_broker
        if broker is not None:
            for environment_id, user_id in outbox.inboxes:
                broker.publish(environment_id, user_id)

    def _dispatch_bulk(self, outbox: Outbox, now: datetime) -> None:
        """A broadcast's releases and messages, at BULK_PRIORITY, always through the queue
        (never kept by the current job): whatever transactional work is queued goes first."""
        due: list[str] = []
        for message_id, at, _ in outbox.bulk_messages:
            if at is not None and at > now:
                self._queue(self._process_message, message_id, eta=at, priority=BULK_PRIORITY)
            else:
                due.append(message_id)
        for start in range(0, len(due), MESSAGES_PER_JOB):
            chunk = due[start : start + MESSAGES_PER_JOB]
            self._queue(self._process_messages, chunk, priority=BULK_PRIORITY)
        for broadcast_pk, cursor, at in outbox.broadcasts:
            self._queue(
                self._broadcast,
                (broadcast_pk, cursor),
                eta=at if at is not None and at > now else None,
                priority=BULK_PRIORITY,
            )

    def enqueue_events(self, event_ids: list[int], environment_id: str | None = None) -> None:
        """Queue the processing of events, in jobs of at most EVENTS_PER_JOB; given their
        environment, at its fair share's priority (tidings.jobs.fairness), else at the
        default priority. While an event job this process queued has not started, they are
        held for it instead (jobs/holding.py)."""
        jobs = [list(job) for job in chunks(event_ids, EVENTS_PER_JOB)]
        if self._held.hold(event_ids, len(jobs)):
            return
        for job in jobs:
            self._queue(self._process, job, priority=self._priority(environment_id, job))

    def _queue_orphaned(self) -> None:
        """A consumer thread found the queue empty: queue the events held for a job that
        another process took."""
        held = self._held.orphaned()
        if held:
            self.enqueue_events(held)

    def process_messages(self, message_ids: list[str], environment_id: str | None = None) -> None:
        """Process messages now, a group per job: a send to many recipients crosses the
        queue a few times rather than once per message. Given their environment, the jobs
        queue at its fair share's priority."""
        for start in range(0, len(message_ids), MESSAGES_PER_JOB):
            chunk = message_ids[start : start + MESSAGES_PER_JOB]
            priority = self._priority(environment_id, chunk)
            self._queue(self._process_messages, chunk, priority=priority)

    def _priority(self, environment_id: str | None, items: list[Any]) -> int | None:
        """A job of `items`' priority: its environment's fair share, else the default."""
        if environment_id is None:
            return None
        return self.fair_share.priority(environment_id, len(items))

    def _process_events(self, event_ids: list[int]) -> None:
        held, jobs = self._held.started(max(0, GROUP_EVENTS - len(event_ids)), EVENTS_PER_JOB)
        for job in jobs:
            self._queue(self._process, job)
        event_ids = [*event_ids, *held]
        with _keeping_here() as here:
            outcome = process_events(
                self.database,
                event_ids,
                self.settings.event_max_attempts,
                self.context,
                self.pace,
                take_waiting=self.database.is_sqlite,
                recent=self._recent,
            )
            self._advance_here(here)
        if outcome.retry:
            delay = 2.0
            logger.warning("retrying %d event(s) in %.0fs", len(outcome.retry), delay)
            self._queue(self._process, outcome.retry, eta=utcnow() + timedelta(seconds=delay))

    def _run_advance(self, run_pk: int) -> None:
        self.pace()
        with _keeping_here() as here:
            here.runs.append(run_pk)
            self._advance_here(here)

    def _advance_here(self, here: _Here) -> None:
        """Advance runs in this job, then route and send the messages they made, also here.

        An event's runs and their sends would otherwise cross the queue twice more. Their rows
        are committed before this runs, so a crash in between loses nothing: the sweeper
        re-drives runs left PROCESSING and messages left ENQUEUED. The job gave way to ingest
        (`pace`) before it began, and does not again: what its events started is finished
        at once rather than paused at each stage.
        """
        for _ in range(RUNS_PER_JOB):
            if not here.runs:
                break
            runs.advance_run(self.context, here.runs.pop(0))
        pending, here.runs = here.runs, []
        for run_pk in pending:
            self._queue(self._advance, run_pk)  # a long chain of invokes continues elsewhere
        messages, here.messages = here.messages, []
        for start in range(0, len(messages), MESSAGES_PER_JOB):
            self._route_and_send(messages[start : start + MESSAGES_PER_JOB])

    def _run_process_message(self, message_id: str) -> None:
        self.pace()
        # Deliver from the same job: no second trip through the queue for the common case.
        for attempt in pipeline.process_message(self.context, message_id):
            self.deliveries.submit(attempt)

    def _run_process_messages(self, message_ids: list[str]) -> None:
        self.pace()
        self._route_and_send(message_ids)

    def _route_and_send(self, message_ids: list[str]) -> None:
        try:
            attempts = pipeline.process_messages(self.context, message_ids)
        except Exception:
            # One message's failure must not hold back the others: route them one by one.
            logger.exception("routing %d messages together failed", len(message_ids))
            attempts = []
            for message_id in message_ids:
                try:
                    attempts.extend(pipeline.process_message(self.context, message_id))
                except Exception:
                    # The sweeper re-drives whatever this left ENQUEUED.
                    logger.exception("processing message %s failed", message_id)
        # Each outcome is committed as soon as its provider answers (on the delivery pool's
        # threads).
        for attempt in attempts:
            self.deliveries.submit(attempt)

    def _run_deliver(self, delivery_id: int) -> None:
        self.pace()
        attempt = pipeline.start_attempt(self.context, delivery_id)
        if attempt is not None:
            self.deliveries.submit(attempt)

    def _run_scan(self, audience_pk: int) -> None:
        membership.scan(self.database, audience_pk)

    def _run_webhook(self, delivery_id: int) -> None:
        if not self.webhooks.submit(delivery_id):
            later = utcnow() + timedelta(seconds=WEBHOOK_POOL_FULL_SECONDS)
            self._queue(self._webhook, delivery_id, eta=later, priority=WEBHOOK_PRIORITY)

    def _run_broadcast(self, position: tuple[int, int]) -> None:
        broadcast_pk, cursor = position
        broadcasts.advance(
            self.database,
            broadcast_pk,
            cursor,
            rate=self.settings.broadcast_rate,
            message_timeout=timedelta(seconds=self.settings.message_timeout_seconds),
        )

    def _run_replay(self, replay_pk: int) -> None:
        # With no process free, the job ends here: a child that ends, or the sweep, queues
        # the replay again (`Replays.keep`).
        self.replays.start(replay_pk)

    def sweep(self, older_than_seconds: float | None = None) -> int:
        """Re-drive work a lost job may have orphaned; returns how many items.

        Events still `received`, messages still ENQUEUED or due, due retries, automation runs
        past their wake-up time or stalled, all older than `older_than_seconds`
        (`TIDINGS_SWEEP_STALE_SECONDS` by default) and not re-driven by a sweep in the last
        CLAIM_HOLD_SECONDS; and deliveries left `sending` by a process whose lease expired.
        Outbound webhook deliveries likewise: `pending` and due, or `sending` with nobody to
        finish them (webhook_out/delivery.py).
        Nothing while more than BACKLOG_JOBS jobs wait in the queue: the consumers are behind,
        not short of jobs, and a later sweep re-drives whatever was lost.

        First, whatever the queue holds, it fires the automation schedules' due ticks
        (automation/schedules.py) and the audiences' due re-checks (automation/membership.py):
        both are on time even while the consumers are behind.
        """
        self.fire_schedules()
        self.keep_audiences()
        self.replays.keep()
        waiting = self._queued_jobs()
        if waiting > BACKLOG_JOBS:
            logger.info("sweep skipped: %d jobs are waiting in the queue", waiting)
            return 0
        age = (
            self.settings.sweep_stale_seconds if older_than_seconds is None else older_than_seconds
        )
        return self._redrive(age, CLAIM_HOLD_SECONDS)

    def _queued_jobs(self) -> int:
        try:
            return int(self.huey.pending_count())
        except Exception:  # the storage is unavailable: sweep, it costs nothing to try
            logger.warning("could not count the queued jobs", exc_info=True)
            return 0

    def recover(self) -> int:
        """Re-drive everything pending at once: when a consumer starts, and when a worker's
        lease expired (the jobs it had taken died with it). What a sweep claimed within one
        lease period is left to that sweep's jobs: so sweeps running at once stay disjoint,
        and a re-drive taken by the dead worker (claimed before it died, so longer ago) is
        re-driven again. Schedule ticks missed while nothing ran fire here too, and the
        audiences' due re-checks and unfinished scans are taken up."""
        self.fire_schedules()
        self.keep_audiences()
        self.replays.keep()
        return self._redrive(0.0, self.settings.worker_lease_seconds)

    def fire_schedules(self) -> int:
        """Fire the automation schedules' due ticks; returns how many runs they started.
        A failure is logged: the ticks stay due for the next sweep."""
        try:
            return schedules.fire_due(self.database)
        except Exception:
            logger.exception("firing the automation schedules failed")
            return 0

    def keep_audiences(self) -> int:
        """Re-check the audience members whose time has come (a window passing an event),
        and queue the scans not finished (a crash, or an edit saved by `tidings apply`
        with no job engine); returns how many re-checks ran. A failure is logged: the
        re-checks stay due, and the scans unfinished, for the next sweep. A scan queued
        twice is harmless: each chunk locks the audience and moves its cursor on."""
        try:
            for audience_pk in membership.unfinished_scans(self.database):
                self._queue(self._scan, audience_pk)
            return membership.check_due(self.database)
        except Exception:
            logger.exception("keeping the audiences failed")
            return 0

    def _redrive(self, age: float, hold: float) -> int:
        """Claim and re-drive, kind by kind, in chunks of SWEEP_BATCH until none is left.

        Each chunk is claimed in a transaction (`kit.sql.claim_rows`), so sweepers running at
        once, in this process or others, re-drive disjoint work.
        """
        started = utcnow()
        before = started - timedelta(seconds=age)
        unclaimed_since = started - timedelta(seconds=hold)
        context = self.context

        # Each claim commits with its outbox: re-driven events and messages are queued at
        # their environment's fair share, so a flooded environment's recovered backlog does
        # not go ahead of another's new work.
        kinds: tuple[tuple[str, Callable[[], int]], ...] = (
            (
                "event(s)",
                lambda: redrive_stale_events(self.database, before, unclaimed_since, SWEEP_BATCH),
            ),
            (
                "message(s)",
                lambda: pipeline.redrive_stuck_messages(
                    context, before, unclaimed_since, SWEEP_BATCH
                ),
            ),
            (
                "deliveries",
                lambda: pipeline.redrive_stuck_deliveries(
                    context, before, unclaimed_since, SWEEP_BATCH
                ),
            ),
            (
                "run(s)",
                lambda: runs.redrive_due_runs(context, before, unclaimed_since, SWEEP_BATCH),
            ),
            (
                "webhook deliveries",
                lambda: webhook_delivery.redrive(context, before, unclaimed_since, SWEEP_BATCH),
            ),
            (
                "broadcast(s)",
                lambda: broadcasts.redrive(self.database, before, unclaimed_since, SWEEP_BATCH),
            ),
        )
        counts = {}
        for name, claim in kinds:
            counts[name] = 0
            while True:
                taken = claim()
                counts[name] += taken
                if taken < SWEEP_BATCH:
                    break
        total = sum(counts.values())
        if total:
            logger.info(
                "sweeper re-drove %s",
                ", ".join(f"{count} {name}" for name, count in counts.items()),
            )
        return total

    def start_lease(self) -> None:
        """Hold this process's worker lease (worker/lease.py) while its consumer runs; when it
        finds another worker's lease expired, re-drive that worker's work."""
        lease = self.context.lease
        if lease is None:
            return
        lease.on_expired = self.recover
        lease.start()

    def stop_lease(self) -> None:
        if self.context.lease is not None:
            self.context.lease.stop()

    def consumer(
        self, workers: int, *, embedded: bool, pace: Callable[[], bool] = no_pause
    ) -> Consumer:
        """A Huey consumer of this engine's jobs. `pace` is called before each job, and before
        each group of events a job processes; it may wait (`tidings serve` passes the ingest
        writer's `IngestPressure.wait_for_turn` so that the consumer gives way to a burst)
        and answers whether ingest is still saturated."""
        self.pace = pace
        consumer_class = EmbeddedConsumer if embedded else TidingsConsumer
        blocking = bool(getattr(self.huey.storage, "blocking", False))
        if not blocking:
            # A polled queue (SQLite): idle threads look at what is held at each poll.
            self._held.enable()
        return consumer_class(
            self.deliveries,
            self.webhooks,
            self.wake,
            self._queue_orphaned,
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=True,
            initial_delay=0.02,
            backoff=1.5,
            # A polled (SQLite) queue: an idle thread sleeps at most 50 ms, unless this
            # process queues a job (`wake`); a job another process queued waits that long.
            max_delay=0.05 if not blocking else 1.0,
            check_worker_health=True,
        )


@dataclass
class _Here:
    """Runs and messages due now that the current job keeps for itself."""

    runs: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


# Set while a job keeps its immediate work (each consumer thread has its own).
_here: contextvars.ContextVar[_Here | None] = contextvars.ContextVar("tidings_here", default=None)


@contextlib.contextmanager
def _keeping_here() -> Iterator[_Here]:
    here = _Here()
    token = _here.set(here)
    try:
        yield here
    finally:
        _here.reset(token)


class _WakingWorker(Worker):  # type: ignore[misc]
    """A Huey worker thread whose idle sleep ends early when its process queues a job."""

    # Huey's, set by its constructor: the next idle sleep, its bound and its growth.
    delay: float
    max_delay: float
    backoff: float

    def __init__(
        self, wake: threading.Event, idle: Callable[[], None], *args: Any, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.wake = wake
        self.idle = idle

    def sleep(self) -> None:
        """The queue was empty: queue what is held for another process's job
        (`JobEngine._queue_orphaned`), then sleep until woken or the next poll."""
        self.idle()
        delay = min(self.delay, self.max_delay)
        if self.wake.wait(delay):
            self.wake.clear()  # this thread now dequeues; a job queued meanwhile sets it again
        self.delay = delay * self.backoff


class TidingsConsumer(Consumer):  # type: ignore[misc]
    """Huey's consumer, with the delivery and webhook pools running while it does, and
    worker threads that `wake` takes out of their idle sleep."""

    worker_class: Any

    def __init__(
        self,
        deliveries: DeliveryPool,
        webhooks: WebhookPool,
        wake: threading.Event,
        idle: Callable[[], None],
        *args: Any,
        **kwargs: Any,
    ) -> None:
        # Before Huey's constructor, which creates the workers from `worker_class`.
        self.worker_class = functools.partial(_WakingWorker, wake, idle)
        super().__init__(*args, **kwargs)
        self.deliveries = deliveries
        self.webhooks = webhooks

    def start(self) -> None:
        self.deliveries.start()
        self.webhooks.start()
        super().start()

    def stop(self, graceful: bool = False) -> None:
        """Stop the consumer threads, then the pool: on a graceful stop it carries out the
        attempts handed to it first."""
        super().stop(graceful)
        self.deliveries.stop(finish=graceful)
        self.webhooks.stop()


class EmbeddedConsumer(TidingsConsumer):
    """A consumer inside `tidings serve`: the web server owns the process's signals."""

    def _set_signal_handlers(self) -> None:
        return None
