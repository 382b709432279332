"""Huey, configured from Settings, and the jobs Tidings runs on it.

The database holds the truth; a job only says "look at these rows". Huey removes a job when a
consumer takes it, so a crash can drop one. The sweeper re-drives whatever is due or stale,
so nothing acknowledged depends on a job surviving: everything pending when a consumer
starts and when another worker's lease expires (jobs/lease.py), and what is older than
`TIDINGS_SWEEP_STALE_SECONDS` every minute.

Storage (`TIDINGS_JOB_STORAGE`):
- `sqlite` (default): `<data dir>/jobs.db`, for one machine;
- `redis://host:port/db`: for many workers on many machines;
- `postgresql://…`: Huey's Postgres storage (LISTEN/NOTIFY, SKIP LOCKED).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from huey import Huey, PostgresHuey, PriorityRedisHuey, SqliteHuey, crontab
from huey.consumer import Consumer
from huey.storage import PriorityRedisStorage, SqliteStorage

from tidings.automation import runs
from tidings.config import Settings
from tidings.event.service import RecentlyProcessed, claim_stale_events, process_events
from tidings.ingest.pressure import no_pause
from tidings.jobs.fairness import FairShare
from tidings.kit.time import utcnow
from tidings.message import pipeline
from tidings.message.pipeline import PipelineContext

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
# Runs (an event's, and the ones they invoke) one job advances before queueing the rest.
RUNS_PER_JOB = 200


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


class JobEngine:
    """The Huey instance plus Tidings' tasks. Task bodies are plain functions tests call."""

    def __init__(self, huey: Huey, context: PipelineContext) -> None:
        self.huey = huey
        self._close_lock = threading.Lock()
        self.context = context
        self.database = context.database
        self.settings = context.settings
        # Called before each event, run and message a job handles; in `tidings serve` it
        # waits while ingest is saturated (tidings.ingest.pressure).
        self.pace: Callable[[], bool] = no_pause
        self._recent = RecentlyProcessed()
        self.fair_share = FairShare()
        self._process = huey.task(name="event.process")(self._process_events)
        self._process_message = huey.task(name="message.process")(self._run_process_message)
        self._process_messages = huey.task(name="message.process_many")(self._run_process_messages)
        self._deliver = huey.task(name="message.deliver")(self._run_deliver)
        self._advance = huey.task(name="automation.advance")(self._run_advance)
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
            else:
                task.schedule(args=(argument,), eta=eta, priority=priority)
        except Exception:
            logger.exception("could not queue a %s job; the sweeper will re-drive it", task.name)

    def enqueue_events(self, event_ids: list[int], environment_id: str | None = None) -> None:
        """Queue the processing of events; given their environment, at its fair share's
        priority (tidings.jobs.fairness), else at the default priority."""
        priority = (
            None
            if environment_id is None
            else self.fair_share.priority(environment_id, len(event_ids))
        )
        self._queue(self._process, event_ids, priority=priority)

    def enqueue_committed(self, by_environment: dict[str, list[int]]) -> None:
        """The ingest writer's hand-off: new events, a job per environment."""
        for environment_id, event_ids in by_environment.items():
            self.enqueue_events(event_ids, environment_id)

    def _process_events(self, event_ids: list[int]) -> None:
        outcome = process_events(
            self.database,
            event_ids,
            self.settings.event_max_attempts,
            self.context,
            self.pace,
            take_waiting=self.database.is_sqlite,
            recent=self._recent,
        )
        here = _HereScheduler(self)
        outcome.followups.dispatch(here)
        self._advance_here([*here.take_runs(), *outcome.runs], here)
        if outcome.retry:
            delay = 2.0
            logger.warning("retrying %d event(s) in %.0fs", len(outcome.retry), delay)
            self._queue(self._process, outcome.retry, eta=utcnow() + timedelta(seconds=delay))

    # The message pipeline's Scheduler protocol.
    def process_message(self, message_id: str, eta: datetime | None = None) -> None:
        self._queue(self._process_message, message_id, eta=eta)

    def process_messages(self, message_ids: list[str], environment_id: str | None = None) -> None:
        """Process messages now, a group per job: a send to many recipients crosses the
        queue a few times rather than once per message. Given their environment, the jobs
        queue at its fair share's priority."""
        for start in range(0, len(message_ids), MESSAGES_PER_JOB):
            chunk = message_ids[start : start + MESSAGES_PER_JOB]
            priority = (
                None
                if environment_id is None
                else self.fair_share.priority(environment_id, len(chunk))
            )
            self._queue(self._process_messages, chunk, priority=priority)

    def deliver(self, delivery_id: int, eta: datetime | None = None) -> None:
        self._queue(self._deliver, delivery_id, eta=eta)

    # The run engine's RunScheduler protocol.
    def advance_run(self, run_pk: int, eta: datetime | None = None) -> None:
        self._queue(self._advance, run_pk, eta=eta)

    def _run_advance(self, run_pk: int) -> None:
        self._advance_here([run_pk], _HereScheduler(self))

    def _advance_here(self, run_pks: list[int], here: _HereScheduler) -> None:
        """Advance runs in this job, then route and send the messages they made, also here.

        An event's runs and their sends would otherwise cross the queue twice more. Their rows
        are committed before this runs, so a crash in between loses nothing: the sweeper
        re-drives runs left PROCESSING and messages left ENQUEUED.
        """
        pending = list(run_pks)
        for _ in range(RUNS_PER_JOB):
            if not pending:
                break
            self.pace()
            runs.advance_run(self.context, here, pending.pop(0))
            pending.extend(here.take_runs())
        for run_pk in pending:
            self.advance_run(run_pk)  # a long chain of invokes continues in other jobs
        messages = here.take_messages()
        for start in range(0, len(messages), MESSAGES_PER_JOB):
            self._run_process_messages(messages[start : start + MESSAGES_PER_JOB])

    def _run_process_message(self, message_id: str) -> None:
        self.pace()
        # Deliver in the same job: no second trip through the queue for the common case.
        for attempt in pipeline.process_message(self.context, self, message_id):
            pipeline.attempt_delivery(self.context, self, attempt)

    def _run_process_messages(self, message_ids: list[str]) -> None:
        self.pace()
        try:
            attempts = pipeline.process_messages(self.context, self, message_ids)
        except Exception:
            # One message's failure must not hold back the others: route them one by one.
            logger.exception("routing %d messages together failed", len(message_ids))
            attempts = []
            for message_id in message_ids:
                try:
                    attempts.extend(pipeline.process_message(self.context, self, message_id))
                except Exception:
                    # The sweeper re-drives whatever this left ENQUEUED.
                    logger.exception("processing message %s failed", message_id)
        # Each outcome is committed as soon as its provider answers: a crash cannot leave a
        # sent message unrecorded for longer than one send.
        for index, attempt in enumerate(attempts):
            if index:
                self.pace()
            pipeline.attempt_delivery(self.context, self, attempt)

    def _run_deliver(self, delivery_id: int) -> None:
        self.pace()
        pipeline.deliver(self.context, self, delivery_id)

    def sweep(self, older_than_seconds: float | None = None) -> int:
        """Re-drive work a lost job may have orphaned; returns how many items.

        Events still `received`, messages still ENQUEUED or due, due retries, automation runs
        past their wake-up time or stalled, all older than `older_than_seconds`
        (`TIDINGS_SWEEP_STALE_SECONDS` by default) and not re-driven by a sweep in the last
        CLAIM_HOLD_SECONDS; and deliveries left `sending` by a process whose lease expired.
        Nothing while more than BACKLOG_JOBS jobs wait in the queue: the consumers are behind,
        not short of jobs, and a later sweep re-drives whatever was lost.
        """
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
        re-driven again."""
        return self._redrive(0.0, self.settings.worker_lease_seconds)

    def _redrive(self, age: float, hold: float) -> int:
        """Claim and re-drive, kind by kind, in chunks of SWEEP_BATCH until none is left.

        Each chunk is claimed in a transaction (`kit.sql.claim_rows`), so sweepers running at
        once, in this process or others, re-drive disjoint work.
        """
        started = utcnow()
        before = started - timedelta(seconds=age)
        unclaimed_since = started - timedelta(seconds=hold)
        context = self.context

        # Re-driven events and messages are queued at their environment's fair share, so a
        # flooded environment's recovered backlog does not go ahead of another's new work.
        def events() -> int:
            claimed = claim_stale_events(self.database, before, unclaimed_since, SWEEP_BATCH)
            for environment_id, ids in claimed.items():
                for start in range(0, len(ids), 100):
                    self.enqueue_events(ids[start : start + 100], environment_id)
            return sum(len(ids) for ids in claimed.values())

        def messages() -> int:
            claimed = pipeline.claim_stuck_messages(context, before, unclaimed_since, SWEEP_BATCH)
            for environment_id, ids in claimed.items():
                self.process_messages(ids, environment_id)
            return sum(len(ids) for ids in claimed.values())

        def deliveries() -> int:
            ids = pipeline.claim_stuck_deliveries(context, before, unclaimed_since, SWEEP_BATCH)
            for delivery_id in ids:
                self.deliver(delivery_id)
            return len(ids)

        def automation_runs() -> int:
            ids = runs.claim_due_runs(context, before, unclaimed_since, SWEEP_BATCH)
            for run_pk in ids:
                self.advance_run(run_pk)
            return len(ids)

        counts = {}
        for name, claim in (
            ("event(s)", events),
            ("message(s)", messages),
            ("deliveries", deliveries),
            ("run(s)", automation_runs),
        ):
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
        """Hold this process's worker lease (jobs/lease.py) while its consumer runs; when it
        finds another worker's lease expired, re-drive that worker's work."""
        lease = self.context.lease
        if lease is None:
            return
        lease.on_expired = self.recover
        lease.start()

    def stop_lease(self) -> None:
        if self.context.lease is not None:
            self.context.lease.stop()

    def consumer(self, workers: int, *, embedded: bool) -> Consumer:
        consumer_class = EmbeddedConsumer if embedded else Consumer
        blocking = bool(getattr(self.huey.storage, "blocking", False))
        return consumer_class(
            self.huey,
            workers=workers,
            worker_type="thread",
            periodic=True,
            initial_delay=0.02,
            backoff=1.5,
            # A polled (SQLite) queue: an idle thread sleeps at most 50 ms, which is what an
            # event's first queue hop waits at low rates (docs/benchmarks.md, Pipeline).
            max_delay=0.05 if not blocking else 1.0,
            check_worker_health=True,
        )


class _HereScheduler:
    """A RunScheduler that keeps immediate work for the current job and queues the rest."""

    def __init__(self, engine: JobEngine) -> None:
        self.engine = engine
        self._runs: list[int] = []
        self._messages: list[str] = []

    def advance_run(self, run_pk: int, eta: datetime | None = None) -> None:
        if eta is None:
            self._runs.append(run_pk)
        else:
            self.engine.advance_run(run_pk, eta)

    def process_messages(self, message_ids: list[str]) -> None:
        self._messages.extend(message_ids)

    def process_message(self, message_id: str, eta: datetime | None = None) -> None:
        if eta is None:
            self._messages.append(message_id)
        else:
            self.engine.process_message(message_id, eta)

    def take_runs(self) -> list[int]:
        taken, self._runs = self._runs, []
        return taken

    def take_messages(self) -> list[str]:
        taken, self._messages = self._messages, []
        return taken


class EmbeddedConsumer(Consumer):  # type: ignore[misc]
    """A consumer inside `tidings serve`: the web server owns the process's signals."""

    def _set_signal_handlers(self) -> None:
        return None
